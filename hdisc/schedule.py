"""Timestep bookkeeping: the noise schedule and its respacing to M DDIM steps.

No network lives here (the split of guided-diffusion's ``respace.py``): a sampler asks
this module which timesteps to visit and which cumulative alphas belong to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def linear_alphas_cumprod(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """abar_t = prod_{s<=t} (1 - beta_s) for the linear schedule; float64, shape [T]."""
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


@dataclass(frozen=True)
class Steps:
    """The M timesteps a DDIM chain visits, in generation order (descending t).

    ``t[i]`` is the timestep of node i, ``abar[i]`` its cumulative alpha and
    ``abar_prev[i]`` that of the node it steps to (1.0 after the last step).
    All tensors have shape [M]; ``abar*`` are float64.
    """

    t: torch.Tensor
    abar: torch.Tensor
    abar_prev: torch.Tensor

    def __len__(self) -> int:
        return len(self.t)


def ddim_steps(M: int, T: int = 1000) -> Steps:
    """M timesteps spread evenly over [0, T-1], both ends included (as Asyrp does).

    Starting at T-1 means the chain starts from (almost) pure noise.
    """
    if not 1 <= M <= T:
        raise ValueError(f"number of DDIM steps M={M} must be between 1 and T={T}")
    abar_all = linear_alphas_cumprod(T)
    t = torch.linspace(0, T - 1, M, dtype=torch.float64).round().long().unique().flip(0)
    if len(t) != M:
        raise ValueError(f"M={M} steps do not fit in T={T} distinct timesteps")
    abar = abar_all[t]
    abar_prev = torch.cat([abar[1:], torch.ones(1, dtype=torch.float64)])
    return Steps(t=t, abar=abar, abar_prev=abar_prev)
