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

import torch
from torch import nn

from .baselines import jacobian_directions
from .sampling import ddim_step
from .schedule import Steps


@torch.no_grad()
def h_spectrum(unet: nn.Module, x_T: torch.Tensor, steps: Steps, t_stop: int, k: int, iters: int = 12,
               clip: bool = True, seed: int = 0) -> torch.Tensor:
    """The top ``k`` singular values of d eps(x_t, t) / d h for each row of x_T [n, C, H, W]
    at each node of the plain DDIM chain ``steps`` with t > ``t_stop`` (the nodes eq. 2 shifts):
    [n, nodes, k], each row decreasing. ``iters`` subspace iterations per image and node."""
    nodes = [i for i in range(len(steps)) if int(steps.t[i]) > t_stop]
    if not nodes:
        raise ValueError(f"no node of the chain has t > t_stop = {t_stop}: lower t_stop below {int(steps.t[0])}")
    out = torch.zeros(len(x_T), len(nodes), k)
    x = x_T
    for i in range(nodes[-1] + 1):
        if i in nodes:
            for j in range(len(x)):
                with torch.enable_grad():
                    out[j, nodes.index(i)] = jacobian_directions(unet, x[j:j + 1], int(steps.t[i]), k, iters,
                                                                 seed=seed + j)[1]
        x = ddim_step(unet, x, steps, i, clip)
    return out


def answered(sigma: torch.Tensor, fraction: float) -> torch.Tensor:
    """How many singular values are at least ``fraction`` (in (0, 1]) of the largest, along the
    last axis of ``sigma`` [..., k] (decreasing): [...]. A count equal to k means "k or more":
    measure more singular values."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}: e.g. 0.25 counts the directions that "
                         f"move the prediction at least a quarter as far as the most answered one")
    return (sigma >= fraction * sigma[..., :1]).sum(-1)
