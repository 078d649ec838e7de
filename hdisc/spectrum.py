"""How many directions of h a DM answers: the singular values of d eps / d h at the shifted
nodes of a chain (the Jacobian whose top singular vectors are Haas et al.'s image-specific
directions, :func:`hdisc.baselines.jacobian_directions`).

A learned direction under ``shift_norm="cap"`` shifts h by a fixed size, so how far it moves
the prediction is set by where it points: along the i-th right singular vector, sigma_i / sigma_1
as far as along the first. When the singular values fall fast, only the first few directions
of h move the image much, and K directions of equal size must either share those few (and
look alike to the reconstructor) or point where the DM hardly answers (and barely change
the image): the spectrum bounds how many distinct, visible edits a DM has at a given |dh|.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .backbone import capture_h
from .baselines import jacobian_directions
from .direction_set import DirectionSet
from .sampling import ddim_step
from .schedule import Steps, shifted_steps


def _shifted_nodes(unet: nn.Module, x_T: torch.Tensor, steps: Steps, t_stop: int, clip: bool
                   ) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(i, t_i, the plain chain's x_{t_i} [n, C, H, W]) at each node i of ``steps`` with
    t_i > ``t_stop`` (the first :func:`hdisc.schedule.shifted_steps` nodes), in order."""
    n = shifted_steps(steps, t_stop)
    if not n:
        raise ValueError(f"no node of the chain has t > t_stop = {t_stop}: lower t_stop below {int(steps.t[0])}")
    x = x_T
    for i in range(n):
        yield i, int(steps.t[i]), x
        if i + 1 < n:
            with torch.no_grad():
                x = ddim_step(unet, x, steps, i, clip)


def h_spectrum(unet: nn.Module, x_T: torch.Tensor, steps: Steps, t_stop: int, k: int, iters: int = 12,
               clip: bool = True, seed: int = 0) -> torch.Tensor:
    """The top ``k`` singular values of d eps(x_t, t) / d h for each row of x_T [n, C, H, W]
    at each node of the plain DDIM chain ``steps`` with t > ``t_stop`` (the nodes eq. 2 shifts):
    [n, nodes, k], each row decreasing. ``iters`` subspace iterations per image and node."""
    out = torch.zeros(len(x_T), shifted_steps(steps, t_stop), k)
    for node, t, x in _shifted_nodes(unet, x_T, steps, t_stop, clip):
        for j in range(len(x)):
            out[j, node] = jacobian_directions(unet, x[j:j + 1], t, k, iters, seed=seed + j)[1]
    return out


def answered_share(unet: nn.Module, dirs: DirectionSet, x_T: torch.Tensor, r: int, iters: int = 12,
                   seed: int = 0) -> torch.Tensor:
    """How much of each direction's shift lies where the DM answers: the share of |dh|^2 inside
    the span of the top ``r`` right singular vectors of d eps / d h, for each row of x_T
    [n, C, H, W] at each shifted node of ``dirs``' chain, averaged over the rows: [K, nodes] in
    [0, 1]. A random direction's share is about r / dim(h)."""
    out = torch.zeros(dirs.K, shifted_steps(dirs.steps, dirs.t_stop))
    k = torch.arange(dirs.K, device=x_T.device)
    for node, t, x in _shifted_nodes(unet, x_T, dirs.steps, dirs.t_stop, dirs.clip):
        for j in range(len(x)):
            v = jacobian_directions(unet, x[j:j + 1], t, r, iters, seed=seed + j)[0].flatten(1).to(x_T.device)
            embs: list[torch.Tensor] = []
            with torch.no_grad(), capture_h(unet, embs) as hs:
                unet(x[j:j + 1], torch.tensor([t], device=x_T.device))
                h, emb = hs[0].expand(dirs.K, -1, -1, -1), embs[0].expand(dirs.K, -1)
                dh = dirs.shift(h, emb, torch.full((dirs.K,), t, device=x_T.device), k).flatten(1)
            out[:, node] += ((dh @ v.T).square().sum(1) / dh.square().sum(1).clamp_min(1e-30)).cpu() / len(x)
    return out


def answered(sigma: torch.Tensor, fraction: float) -> torch.Tensor:
    """How many singular values are at least ``fraction`` (in (0, 1]) of the largest, along the
    last axis of ``sigma`` [..., k] (decreasing): [...]. A count equal to k means "k or more":
    measure more singular values."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}: e.g. 0.25 counts the directions that "
                         f"move the prediction at least a quarter as far as the most answered one")
    return (sigma >= fraction * sigma[..., :1]).sum(-1)
