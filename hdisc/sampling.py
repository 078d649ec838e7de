"""Deterministic DDIM sampling and inversion, as plain functions with one signature.

Every sampler is ``fn(model, x, steps, *, clip, callback, disable) -> x`` (the style of
k-diffusion's ``sampling.py``). ``model(x [B, C, H, W], t [B]) -> eps`` predicts noise;
a model may instead return a pair ``(eps_x0, eps_dir)``, in which case the predicted x_0
uses ``eps_x0`` and the direction term uses ``eps_dir``: that is the asymmetric step of
Asyrp, and :class:`Shifted` is the model adapter that produces it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from .backbone import asymmetric
from .schedule import Steps

EpsPrediction = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
EpsModel = Callable[[torch.Tensor, torch.Tensor], EpsPrediction]
Callback = Callable[[dict], None]


def predict_x0(x: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """P_t(eps) = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    return (x - (1 - abar).sqrt() * eps) / abar.sqrt()


def _clipped(x: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip the predicted x_0 to [-1, 1] and re-derive eps from it (guided-diffusion's way)."""
    x0 = predict_x0(x, eps, abar).clamp(-1, 1)
    return x0, (x - abar.sqrt() * x0) / (1 - abar).sqrt()


def ddim_update(x: torch.Tensor, eps_x0: torch.Tensor, eps_dir: torch.Tensor,
                abar: float | torch.Tensor, abar_next: float | torch.Tensor,
                clip: bool = False) -> torch.Tensor:
    """x_next = sqrt(abar_next) P_t(eps_x0) + sqrt(1 - abar_next) eps_dir   (eta = 0).

    With ``eps_x0 is eps_dir`` this is the plain DDIM step; with two predictions it is the
    asymmetric step. Also the inversion step when ``abar_next < abar``. ``clip`` clips
    each predicted x_0 to [-1, 1] and re-derives its eps (this zeroes gradients at clipped
    pixels). Shapes: x, eps_* [B, C, H, W].
    """
    abar = torch.as_tensor(abar, dtype=torch.float64).to(x.dtype)
    abar_next = torch.as_tensor(abar_next, dtype=torch.float64).to(x.dtype)
    if clip:
        x0, eps_dir_c = _clipped(x, eps_dir, abar)
        if eps_x0 is not eps_dir:
            x0, _ = _clipped(x, eps_x0, abar)
        eps_dir = eps_dir_c
    else:
        x0 = predict_x0(x, eps_x0, abar)
    return abar_next.sqrt() * x0 + (1 - abar_next).sqrt() * eps_dir


def _split(pred: EpsPrediction) -> tuple[torch.Tensor, torch.Tensor]:
    return pred if isinstance(pred, tuple) else (pred, pred)


def ddim_step(model: EpsModel, x: torch.Tensor, steps: Steps, i: int, clip: bool = True) -> torch.Tensor:
    """Node i -> node i + 1 of the chain described by ``steps``."""
    t = steps.t[i].expand(x.shape[0]).to(x.device)
    eps_x0, eps_dir = _split(model(x, t))
    return ddim_update(x, eps_x0, eps_dir, steps.abar[i], steps.abar_prev[i], clip)


def sample_ddim(model: EpsModel, x: torch.Tensor, steps: Steps, *, clip: bool = True,
                callback: Callback | None = None, disable: bool | None = None) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021, eta = 0) from x_T [B, C, H, W] to x_0.

    ``callback`` receives ``{"i", "t", "x"}`` after each step. ``disable`` hides the
    progress bar (None: hide it when not on a terminal or notebook).
    """
    for i in tqdm(range(len(steps)), desc="DDIM", disable=disable, leave=False):
        x = ddim_step(model, x, steps, i, clip)
        if callback is not None:
            callback({"i": i, "t": int(steps.t[i]), "x": x})
    return x


def invert_ddim(model: EpsModel, x: torch.Tensor, steps: Steps, *, clip: bool = False,
                callback: Callback | None = None, disable: bool | None = None) -> torch.Tensor:
    """DDIM inversion: run the deterministic update forward in t, x_0 [B, C, H, W] -> x_T.

    Visits the nodes of ``steps`` in reverse, evaluating the model at the destination
    timestep on the current node, so ``sample_ddim(model, invert_ddim(model, x0, s), s)``
    approximately returns x0 (exactly in the limit of small steps).
    """
    for i in tqdm(reversed(range(len(steps))), total=len(steps), desc="DDIM inversion",
                  disable=disable, leave=False):
        t = steps.t[i].expand(x.shape[0]).to(x.device)
        eps_x0, eps_dir = _split(model(x, t))
        x = ddim_update(x, eps_x0, eps_dir, steps.abar_prev[i], steps.abar[i], clip)
        if callback is not None:
            callback({"i": i, "t": int(steps.t[i]), "x": x})
    return x


Shift = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""A set of directions: ``shift(h [B, C, H, W], emb [B, E], t [B], k [B]) -> dh [B, C, H, W]``
per unit strength (a trained :class:`hdisc.discovery.ShiftBlock`,
:class:`hdisc.direction_set.FixedDirections`, ...)."""


class Shifted:
    """Model adapter for the paper's eq. 2: asymmetric steps for t > t_stop, plain below.

    At such a step h becomes ``h + s * shift(h, emb, t, k)`` for directions k [B] and
    strengths s [B], and a call returns ``(eps(x_t | h + dh), eps(x_t))`` from one encoder
    pass; at or below ``t_stop``, plain ``eps(x_t)``. With ``references=R`` the first R rows
    of every batch are an unshifted chain run alongside (k and s belong to the other rows).
    """

    def __init__(self, unet: torch.nn.Module, shift: Shift, k: torch.Tensor, s: torch.Tensor, t_stop: int,
                 references: int = 0):
        self.unet, self.shift, self.k, self.t_stop, self.references = unet, shift, k, t_stop, references
        self.scale = s.view(-1, 1, 1, 1)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> EpsPrediction:
        if int(t[0]) <= self.t_stop:
            return self.unet(x, t)
        rows_t = t[self.references:]

        def delta(h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            return self.scale * self.shift(h, emb, rows_t, self.k)

        with asymmetric(self.unet, delta, first=self.references):
            eps = self.unet(x, t)
        orig, shifted = eps[:len(x)], eps[len(x):]
        return torch.cat([orig[:self.references], shifted]), orig


@torch.no_grad()
def generate(model: EpsModel, n: int, shape: tuple[int, int, int], steps: Steps, *, seed: int = 0,
             batch: int = 64, clip: bool = True, device: str | torch.device = "cpu",
             disable: bool | None = None) -> torch.Tensor:
    """``n`` DDIM samples [n, *shape] from seeded noise (the same seed gives the same images),
    ``batch`` at a time (a preset's ``unet.sample_batch()`` bounds what fits in memory)."""
    for name, value in (("n", n), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"generate: {name}={value!r} is out of range: valid an int >= 1")
    z = torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))
    out = [sample_ddim(model, z[i:i + batch].to(device), steps, clip=clip, disable=disable).cpu()
           for i in range(0, n, batch)]
    return torch.cat(out)
