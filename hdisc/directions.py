"""Using a set of directions: ranking, real-image editing, and the h-space properties of
the paper's section 5.4 (homogeneity, consistency across timesteps).

Everything takes a :class:`hdisc.direction_set.DirectionSet`, so it runs on the chain the
set carries (for learned directions, the training chain of ``cfg.M`` steps, where an edit
has the size it had in training).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

import torch
from scipy.sparse.csgraph import connected_components
from torch import nn
from tqdm.auto import tqdm

from .direction_set import DirectionSet, FixedDirections
from .discovery import change_similarity, draw_shifts
from .runs import recorded
from .sampling import invert_ddim, sample_ddim
from .schedule import Steps


@torch.no_grad()
def direction_ends(unet: nn.Module, dirs: DirectionSet, x_T: torch.Tensor, progress: bool | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every direction at both ends of its range on the rows of x_T [B, C, H, W]: the plain
    samples x_0 [B, C, H, W] and the edits x'_0(k, s) at s = -S and +S [K, B, 2, C, H, W]."""
    ends = torch.tensor([-dirs.S, dirs.S])
    return dirs.plain(unet, x_T), torch.stack([dirs.sweep(unet, x_T, k, ends)
                                               for k in tqdm(range(dirs.K), desc="directions' edits",
                                                             disable=progress is False)])


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


def mean_abs_offdiag(m: torch.Tensor) -> float:
    """Mean |m_kj| over k != j of a square matrix [K, K]."""
    K = len(m)
    return ((m.abs().sum() - m.diagonal().abs().sum()) / (K * (K - 1))).item()


def alike_groups(similarity: torch.Tensor, threshold: float = 0.7) -> list[list[int]]:
    """Directions that change an image alike: the connected groups of two or more directions
    when k and j are linked wherever |similarity[k, j]| >= ``threshold`` (similarity [K, K],
    :func:`change_similarity`). Largest group first, each in index order. A reconstructor
    can hardly tell the members of one group apart."""
    linked = (similarity.abs() >= threshold).cpu().numpy()
    _, label = connected_components(linked, directed=False)
    groups = [[int(k) for k in (label == g).nonzero()[0]] for g in range(label.max() + 1)]
    return sorted((g for g in groups if len(g) > 1), key=lambda g: (-len(g), g[0]))


def distinct_effects(groups: list[list[int]], K: int) -> int:
    """How many different effects K directions have when each group of :func:`alike_groups`
    counts once: the most directions a reconstructor could name if it could not tell a
    group's members apart at all."""
    return K - sum(map(len, groups)) + len(groups)


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
    similarity_by_sign: torch.Tensor
    """[2, K, K] the same at -S and +S apart: averaged over the signs, a direction that does
    the same at both scores 0 against every signed one, so alike groups of ``abs().mean(0)``
    also count those."""


def ranked(unet: nn.Module, dirs: DirectionSet, discriminator: Callable[[torch.Tensor], torch.Tensor], n: int, *,
           seed: int = 0, device: str | torch.device = "cpu") -> Ranking:
    """Rank the directions on ``n`` noises drawn from ``seed``, on the set's chain, by how
    much they change an image times how real ``discriminator`` (a trained model's) finds
    the result: directions that only wreck the image (large change, edits the
    discriminator rejects) fall behind ones that change it as much and stay plausible."""
    shape = (unet.in_channels, unet.image_size, unet.image_size)
    z = torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed)).to(device)
    x0, ends = direction_ends(unet, dirs, z)
    changes = ends - x0[:, None]
    change, real = change_scores(changes).cpu(), realism(discriminator, x0, ends).cpu()
    by_sign = change_similarity(changes, by_sign=True).cpu()
    return Ranking((change * real).argsort(descending=True).tolist(), change, real, by_sign.mean(0), by_sign)


def ranked_order(record: str | os.PathLike, files: dict[str, str | os.PathLike | None], unet: nn.Module,
                 dirs: DirectionSet, discriminator: Callable[[torch.Tensor], torch.Tensor], n: int, *,
                 seed: int = 0, device: str | torch.device = "cpu") -> list[int]:
    """The directions by change x realism (:func:`ranked` on ``n`` noises of ``seed``), read
    from a directions record (the directions chapter's ``directions.json``, its
    ``ranking_order``) when that record ranked the same model files (``files``: {role: path
    or None}, as chapters record them) on as many noises of the same seed; else ranked here.
    The chapters that edit "the directions that change images most" rank once this way."""
    order = recorded(record, files, "ranking_order", n_rank=n, seed=seed)
    return list(order) if order is not None else ranked(unet, dirs, discriminator, n, seed=seed, device=device).order


@torch.no_grad()
def invert(unet: nn.Module, x0: torch.Tensor, steps: Steps) -> tuple[torch.Tensor, torch.Tensor]:
    """DDIM inversion of real images x0 [B, C, H, W] over ``steps`` (the paper uses 100):
    returns (x_T, reconstruction) [B, C, H, W] each."""
    x_T = invert_ddim(unet, x0, steps, disable=True)
    return x_T, sample_ddim(unet, x_T, steps, disable=True, clip=True)


@torch.no_grad()
def mean_directions(unet: nn.Module, dirs: DirectionSet, x_T: torch.Tensor, k: int
                    ) -> tuple[FixedDirections, FixedDirections]:
    """Homogeneity and consistency (paper 5.4) for direction ``k``.

    Along the plain chains of x_T [N, C, H, W], dh of direction k is averaged over the N
    samples at each shifted timestep (the mean direction) and then also over the shifting
    interval (the global direction). Both are returned as one-direction shifts (K = 1) that
    edit on the same chain: ``dirs.with_shift(mean).edit(unet, x_T, 0, s)``.
    """
    kk = torch.full((len(x_T),), k, dtype=torch.long, device=x_T.device)
    records: dict[int, torch.Tensor] = {}

    def recording(h: torch.Tensor, emb: torch.Tensor, t: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        records[int(t[0])] = dirs.shift(h, emb, t, kk).mean(0)
        return torch.zeros_like(h)

    dirs.with_shift(recording).edit(unet, x_T, 0, 0.0)
    return FixedDirections({t: d[None] for t, d in records.items()}), \
        FixedDirections(torch.stack(list(records.values())).mean(0)[None])


@torch.no_grad()
def edit_pairs(unet: nn.Module, dirs: DirectionSet, n_noise: int, per_noise: int, *, seed: int, batch: int = 64,
               s_min: float = 0.0, device: str | torch.device = "cpu", progress: bool | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Raw samples and edits on the chain of ``dirs`` (paper 5.6, and the post-hoc
    reconstructor's pairs): each of ``n_noise`` noises drawn from ``seed`` gives its plain
    sample x_0 and ``per_noise`` edits at random k in 0..K-1 and s uniform in [-S, S]
    (|s| >= ``s_min``, as :func:`hdisc.discovery.draw_shifts` draws them).
    Returns x0 (repeated per edit), x_shift [n_noise * per_noise, C, H, W] (CPU), k and s."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn((n_noise, unet.in_channels, unet.image_size, unet.image_size), generator=gen)
    k, s = draw_shifts(n_noise * per_noise, dirs.K, dirs.S, gen, s_min)
    x0 = torch.cat([dirs.plain(unet, z[i:i + batch].to(device)).cpu()
                    for i in range(0, n_noise, batch)]).repeat_interleave(per_noise, 0)
    zz = z.repeat_interleave(per_noise, 0)
    xs = torch.cat([dirs.edit(unet, zz[i:i + batch].to(device), k[i:i + batch].to(device),
                              s[i:i + batch].to(device)).cpu()
                    for i in tqdm(range(0, len(zz), batch), desc="edits", disable=progress is False)])
    return x0, xs, k, s


@torch.no_grad()
def compare_shifts(unet: nn.Module, dirs: DirectionSet, x_T: torch.Tensor, recon: torch.Tensor, k: int, s: float,
                   noise: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """Section 5.4 on real images: edit x_T [B, C, H, W] (whose reconstruction is ``recon``)
    along ``k`` at strength ``s`` with the per-sample shift, the mean shift and the global
    shift (both measured on ``noise`` [N, C, H, W] by :func:`mean_directions`), all on the
    chain of ``dirs``.

    Returns the numbers ``{"k", "edit_change": mean |per-sample - recon|, "mean_vs_sample",
    "global_vs_sample"}`` (mean abs difference to the per-sample edit over edit_change; 0
    means identical) and the images [4B, C, H, W]: recon, per-sample, mean, global.
    """
    per_t, global_dir = mean_directions(unet, dirs, noise, k)
    per_sample = dirs.edit(unet, x_T, k, s)
    mean = dirs.with_shift(per_t).edit(unet, x_T, 0, s)
    glob = dirs.with_shift(global_dir).edit(unet, x_T, 0, s)
    change = (per_sample - recon).abs().mean().item()
    row = {"k": k, "edit_change": change, "mean_vs_sample": (mean - per_sample).abs().mean().item() / change,
           "global_vs_sample": (glob - per_sample).abs().mean().item() / change}
    return row, torch.cat([recon, per_sample, mean, glob])
