"""Using trained directions: sweeps over strength, ranking, real-image editing, and the
h-space properties of the paper's section 5.4 (homogeneity, consistency across timesteps).

Everything runs on the DDIM chain the directions were trained with (``cfg.M`` steps), so
the number of shifted steps, and with it the size of an edit, matches training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from .discovery import DiscoveryModel, ShiftBlock, draw_shifts, shifted_model
from .presets import DiscoveryConfig
from .sampling import EpsPrediction, Shifted, invert_ddim, sample_ddim
from .schedule import Steps, ddim_steps

Shift = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""A set of directions as a shift: ``(h [B, C, H, W], emb [B, E], k [B]) -> dh`` (unscaled by
s): a trained :class:`hdisc.discovery.ShiftBlock` or :class:`hdisc.baselines.FixedDirections`."""


@torch.no_grad()
def edit(unet: nn.Module, shift: ShiftBlock, x_T: torch.Tensor, k: int | torch.Tensor, s: float | torch.Tensor,
         steps: Steps, t_stop: int, clip: bool = True) -> torch.Tensor:
    """x'_0 [B, C, H, W] of eq. 2 from x_T [B, C, H, W] along direction ``k`` at strength ``s``
    (each a number or one value per row)."""
    b = len(x_T)
    k = torch.as_tensor(k, device=x_T.device).long().expand(b)
    s = torch.as_tensor(s, device=x_T.device, dtype=x_T.dtype).expand(b)
    return sample_ddim(shifted_model(unet, shift, k, s, t_stop), x_T, steps, clip=clip, disable=True)


def shifted_steps(steps: Steps, t_stop: int) -> int:
    """How many nodes of a chain take the asymmetric (shifted) step: those with t > t_stop."""
    return int((steps.t > t_stop).sum())


def chain_scale(steps: Steps, cfg: DiscoveryConfig) -> float:
    """The factor on s that gives an edit on ``steps`` the size it had in training.

    Each asymmetric step moves x by about sqrt(1 - abar_t) times the change of eps,
    whatever the step size, so an edit grows with the number of shifted steps: on a
    100-step chain (60 shifted for t_stop 400) the same s moves the image about 20 times as
    far as on the 5-step training chain (3 shifted). Returns shifted steps in training over
    shifted steps on ``steps`` (3/60 there; 1 on the training chain).
    """
    return shifted_steps(ddim_steps(cfg.M), cfg.t_stop) / max(shifted_steps(steps, cfg.t_stop), 1)


def strengths(S: float, n: int = 5) -> torch.Tensor:
    """``n`` strengths uniform in [-S, S] (the middle one is 0 when n is odd)."""
    return torch.linspace(-S, S, n)


@torch.no_grad()
def sweep(unet: nn.Module, shift: ShiftBlock, x_T: torch.Tensor, k: int, svals: torch.Tensor, steps: Steps,
          t_stop: int, clip: bool = True) -> torch.Tensor:
    """Edits of every row of x_T [B, C, H, W] at every strength of ``svals`` [n]:
    images [B, n, C, H, W] (one batch of B * n through the chain)."""
    b, n = len(x_T), len(svals)
    x = x_T.repeat_interleave(n, 0)
    out = edit(unet, shift, x, k, svals.to(x_T).repeat(b), steps, t_stop, clip)
    return out.view(b, n, *x_T.shape[1:])


@torch.no_grad()
def all_sweeps(unet: nn.Module, shift: Shift, cfg: DiscoveryConfig, x_T: torch.Tensor, svals: torch.Tensor,
               steps: Steps, clip: bool = True, progress: bool | None = None) -> torch.Tensor:
    """Every direction's sweep over ``svals`` [n] on the rows of x_T [N, C, H, W]:
    images [K, N, n, C, H, W] on the CPU (the input of :func:`hdisc.interpret.evaluate`)."""
    return torch.stack([sweep(unet, shift, x_T, k, svals, steps, cfg.t_stop, clip).cpu()
                        for k in tqdm(range(cfg.K), desc="sweeps", disable=progress is False)])


@torch.no_grad()
def direction_ends(unet: nn.Module, model: DiscoveryModel, cfg: DiscoveryConfig, x_T: torch.Tensor,
                   steps: Steps, clip: bool = True, progress: bool | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every direction at both ends of its range on the rows of x_T [B, C, H, W]: the plain
    samples x_0 [B, C, H, W] and the edits x'_0(k, s) at s = -S and +S [K, B, 2, C, H, W]."""
    x0 = sample_ddim(unet, x_T, steps, clip=clip, disable=True)
    ends = torch.tensor([-cfg.S, cfg.S])
    return x0, torch.stack([sweep(unet, model.shift, x_T, k, ends, steps, cfg.t_stop, clip)
                            for k in tqdm(range(cfg.K), desc="directions' edits", disable=progress is False)])


def change_scores(changes: torch.Tensor) -> torch.Tensor:
    """How much each direction changes an image: mean |x'_0 - x_0| of changes [K, ...] -> [K]."""
    return changes.abs().flatten(1).mean(1)


@torch.no_grad()
def realism(discriminator: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor,
            ends: torch.Tensor) -> torch.Tensor:
    """How real the discriminator finds each direction's edits, relative to plain samples:
    mean sigmoid(D(x'_0)) over the edits of each direction divided by mean sigmoid(D(x_0)),
    capped at 1. x0 [B, C, H, W], ends [K, B, 2, C, H, W] -> [K] in [0, 1]; 1 means the
    edits look as real as the samples they came from."""
    p_real = torch.sigmoid(discriminator(x0)).mean()
    p_edit = torch.sigmoid(discriminator(ends.flatten(0, 2))).view(len(ends), -1).mean(1)
    return (p_edit / p_real.clamp_min(1e-12)).clamp(max=1.0)


def change_similarity(changes: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of what two directions do to the same image at the same sign,
    averaged over images and signs: changes [K, B, 2, ...] -> [K, K] (1 on the diagonal
    unless a direction changes nothing). Directions that collapsed onto one effect score
    near +-1; distinct effects near 0."""
    unit = torch.nn.functional.normalize(changes.flatten(3), dim=3, eps=1e-12)
    return torch.einsum("kbsp,jbsp->kj", unit, unit) / (changes.shape[1] * changes.shape[2])


def mean_abs_offdiag(m: torch.Tensor) -> float:
    """Mean |m_kj| over k != j of a square matrix [K, K]."""
    K = len(m)
    return ((m.abs().sum() - m.diagonal().abs().sum()) / (K * (K - 1))).item()


class Ranking(NamedTuple):
    """The directions measured on a few noises (see :func:`ranked`); tensors on the CPU."""

    order: list[int]
    """Directions by decreasing ``change * realism``."""
    change: torch.Tensor
    """[K] mean |x'_0 - x_0| at s = +-S (:func:`change_scores`)."""
    realism: torch.Tensor
    """[K] the discriminator's view of the edits (:func:`realism`)."""
    similarity: torch.Tensor
    """[K, K] :func:`change_similarity`."""


def ranked(unet: nn.Module, model: DiscoveryModel, cfg: DiscoveryConfig, n: int, *, seed: int = 0,
           device: str | torch.device = "cpu", clip: bool = True) -> Ranking:
    """Rank the directions on ``n`` noises drawn from ``seed``, on the training chain
    (``cfg.M`` steps), by how much they change an image times how real the discriminator
    finds the result: directions that only wreck the image (large change, edits the
    discriminator rejects) fall behind ones that change it as much and stay plausible."""
    shape = (unet.in_channels, unet.image_size, unet.image_size)
    z = torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed)).to(device)
    x0, ends = direction_ends(unet, model, cfg, z, ddim_steps(cfg.M), clip)
    changes = ends - x0[:, None]
    change, real = change_scores(changes).cpu(), realism(model.discriminator, x0, ends).cpu()
    return Ranking((change * real).argsort(descending=True).tolist(), change, real,
                   change_similarity(changes).cpu())


@torch.no_grad()
def invert(unet: nn.Module, x0: torch.Tensor, steps: Steps) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM inversion of real images x0 [B, C, H, W] over ``steps`` (the paper uses 100):
    returns (x_T, reconstruction) [B, C, H, W] each."""
    x_T = invert_ddim(unet, x0, steps, disable=True)
    return x_T, sample_ddim(unet, x_T, steps, disable=True, clip=True)


class FixedShift:
    """Eps-model of eq. 2 with a shift that ignores h: dh_t = s * table[t] for t > t_stop.

    ``table`` maps a timestep to dh [C, H, W] (per-timestep mean direction), or is one
    tensor [C, H, W] used at every shifted step (the global direction). s [B].
    """

    def __init__(self, unet: nn.Module, table: dict[int, torch.Tensor] | torch.Tensor, s: torch.Tensor,
                 t_stop: int):
        self.unet, self.table, self.t_stop = unet, table, t_stop
        self.scale = s.view(-1, 1, 1, 1)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> EpsPrediction:
        def delta(h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # only called for t > t_stop
            return self.scale * (self.table[int(t[0])] if isinstance(self.table, dict) else self.table)

        return Shifted(self.unet, delta, self.t_stop)(x, t)


@torch.no_grad()
def mean_directions(unet: nn.Module, shift: ShiftBlock, x_T: torch.Tensor, k: int, steps: Steps,
                    t_stop: int, clip: bool = True) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """Homogeneity and consistency (paper 5.4) for direction ``k``.

    Along the plain chains of x_T [N, C, H, W], f^k(h_t, t) is averaged over the N samples
    at each shifted timestep (the mean direction, {t: [C, H, W]}) and then also over the
    shifting interval (the global direction, [C, H, W]).
    """
    kk = torch.full((len(x_T),), k, dtype=torch.long, device=x_T.device)
    records: list[torch.Tensor] = []

    def delta(h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        records.append(shift(h, emb, kk).mean(0))
        return torch.zeros_like(h)

    sample_ddim(Shifted(unet, delta, t_stop), x_T, steps, clip=clip, disable=True)
    table = dict(zip([int(t) for t in steps.t if t > t_stop], records, strict=True))
    return table, torch.stack(records).mean(0)


@torch.no_grad()
def edit_fixed(unet: nn.Module, table: dict[int, torch.Tensor] | torch.Tensor, x_T: torch.Tensor,
               s: float, steps: Steps, t_stop: int, clip: bool = True) -> torch.Tensor:
    """Like :func:`edit`, with a mean or global direction from :func:`mean_directions`."""
    scale = torch.full((len(x_T),), float(s), device=x_T.device)
    return sample_ddim(FixedShift(unet, table, scale, t_stop), x_T, steps, clip=clip, disable=True)


@torch.no_grad()
def raw_and_shifted(unet: nn.Module, model: DiscoveryModel, cfg: DiscoveryConfig, n: int, steps: Steps, *,
                    seed: int = 0, batch: int = 100, device: str | torch.device = "cpu",
                    progress: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` raw samples and their shifted versions from the same noise, each with a random
    direction and strength (paper 5.6): two tensors [n, C, H, W] on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn((n, unet.in_channels, unet.image_size, unet.image_size), generator=gen)
    k, s = draw_shifts(n, cfg, gen)
    raw, shifted = [], []
    for i in tqdm(range(0, n, batch), desc="samples", disable=progress is False):
        zi = z[i:i + batch].to(device)
        raw.append(sample_ddim(unet, zi, steps, disable=True).cpu())
        shifted.append(edit(unet, model.shift, zi, k[i:i + batch], s[i:i + batch], steps, cfg.t_stop).cpu())
    return torch.cat(raw), torch.cat(shifted)


@torch.no_grad()
def compare_shifts(unet: nn.Module, shift: ShiftBlock, x_T: torch.Tensor, recon: torch.Tensor, k: int, s: float,
                   noise: torch.Tensor, steps: Steps, t_stop: int) -> tuple[dict, torch.Tensor]:
    """Section 5.4 on real images: edit x_T [B, C, H, W] (whose reconstruction is ``recon``)
    along ``k`` at strength ``s`` with the per-sample shift, the mean shift and the global
    shift (both measured on ``noise`` [N, C, H, W] by :func:`mean_directions`).

    Returns the numbers ``{"k", "edit_change": mean |per-sample - recon|, "mean_vs_sample",
    "global_vs_sample"}`` (mean abs difference to the per-sample edit over edit_change; 0
    means identical) and the images [4B, C, H, W]: recon, per-sample, mean, global.
    """
    table, global_dir = mean_directions(unet, shift, noise, k, steps, t_stop)
    per_sample = edit(unet, shift, x_T, k, s, steps, t_stop)
    mean = edit_fixed(unet, table, x_T, s, steps, t_stop)
    glob = edit_fixed(unet, global_dir, x_T, s, steps, t_stop)
    change = (per_sample - recon).abs().mean().item()
    row = {"k": k, "edit_change": change, "mean_vs_sample": (mean - per_sample).abs().mean().item() / change,
           "global_vs_sample": (glob - per_sample).abs().mean().item() / change}
    return row, torch.cat([recon, per_sample, mean, glob])
