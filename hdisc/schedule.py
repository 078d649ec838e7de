"""Timestep bookkeeping: the noise schedule and its respacing to M DDIM steps.

No network lives here (the split of guided-diffusion's ``respace.py``): a sampler asks
this module which timesteps to visit and which cumulative alphas belong to them. The
schedule a DM was trained with travels with its checkpoint (:func:`hdisc.backbone.save_unet`
writes it, :func:`hdisc.backbone.load_dm` reads it into the :class:`hdisc.dm.DM` value), so
every chain is built from the model's own schedule (``dm.steps(M)``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

KINDS = ("linear", "scaled_linear", "cosine")
PREDICTIONS = ("eps", "v")
"""What a DM's network outputs: the noise (``eps``), or ``v = sqrt(abar) eps - sqrt(1 - abar) x_0``
(Salimans and Ho 2022; diffusers' ``v_prediction``), whose x_0 estimate near t = T does not
divide the network's error by sqrt(abar)."""


@dataclass(frozen=True)
class Schedule:
    """The noise schedule of a DM: ``T`` training timesteps whose betas are ``linear`` from
    ``beta_start`` to ``beta_end`` (DDPM; guided-diffusion's ``linear``), ``scaled_linear``
    (linear in sqrt(beta); diffusers' name) or ``cosine`` (Nichol & Dhariwal 2021; betas
    capped at 0.999, guided-diffusion's and diffusers' ``squaredcos_cap_v2``). ``prediction``
    (:data:`PREDICTIONS`) is what the network outputs; every sampler reads noise, which
    :class:`hdisc.dm.DM` converts a v-predicting network's output to."""

    T: int = 1000
    kind: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction: str = "eps"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Schedule: kind={self.kind!r} is not known: valid {KINDS}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"Schedule: prediction={self.prediction!r} is not known: valid {PREDICTIONS}")
        if isinstance(self.T, bool) or not isinstance(self.T, int) or self.T < 2:
            raise ValueError(f"Schedule: T={self.T!r} is out of range: valid an int >= 2 (e.g. 1000)")
        if self.kind != "cosine" and not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"Schedule: beta_start={self.beta_start}, beta_end={self.beta_end} are out of range: "
                             "valid 0 < beta_start < beta_end < 1 (e.g. 1e-4 and 0.02)")

    def betas(self) -> torch.Tensor:
        """beta_t for t = 0..T-1; float64, shape [T]."""
        if self.kind == "linear":
            return torch.linspace(self.beta_start, self.beta_end, self.T, dtype=torch.float64)
        if self.kind == "scaled_linear":
            return torch.linspace(self.beta_start ** 0.5, self.beta_end ** 0.5, self.T, dtype=torch.float64) ** 2

        def abar(u: float) -> float:
            return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

        return torch.tensor([min(1 - abar((i + 1) / self.T) / abar(i / self.T), 0.999) for i in range(self.T)],
                            dtype=torch.float64)

    def alphas_cumprod(self) -> torch.Tensor:
        """abar_t = prod_{s<=t} (1 - beta_s); float64, shape [T]."""
        return torch.cumprod(1.0 - self.betas(), dim=0)

    def to_dict(self) -> dict:
        """The fields as a dict; ``prediction`` only when it is not ``eps``, so that the files
        and run identities written before it existed read as the same schedule."""
        d = dataclasses.asdict(self)
        if d["prediction"] == "eps":
            del d["prediction"]
        return d

    def target(self, x0: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
        """What the network is trained to output for x_t = sqrt(abar) x0 + sqrt(1 - abar) noise
        (abar broadcastable to x0 [B, C, H, W]): the noise, or v."""
        return noise if self.prediction == "eps" else abar.sqrt() * noise - (1 - abar).sqrt() * x0

    @classmethod
    def from_dict(cls, d: dict) -> Schedule:
        """The schedule from its :meth:`to_dict` form (unknown keys raise)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        if set(d) - fields:
            raise ValueError(f"unknown schedule keys {sorted(set(d) - fields)}; expected {sorted(fields)}")
        return cls(**d)

    @classmethod
    def from_diffusers(cls, config: dict) -> Schedule:
        """The schedule of a diffusers ``scheduler_config.json`` (DDPM or DDIM scheduler)."""
        kinds = {"linear": "linear", "scaled_linear": "scaled_linear", "squaredcos_cap_v2": "cosine"}
        name = config.get("beta_schedule", "linear")
        if name not in kinds:
            raise ValueError(f"scheduler_config.json: beta_schedule={name!r} is not supported: valid {sorted(kinds)}")
        if config.get("trained_betas") is not None:
            raise ValueError("scheduler_config.json: trained_betas (an explicit beta array) is not supported")
        predictions = {"epsilon": "eps", "v_prediction": "v"}
        if config.get("prediction_type", "epsilon") not in predictions:
            raise ValueError(f"scheduler_config.json: prediction_type={config['prediction_type']!r} is not "
                             f"supported: valid {sorted(predictions)}")
        return cls(int(config.get("num_train_timesteps", 1000)), kinds[name],
                   float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02)),
                   predictions[config.get("prediction_type", "epsilon")])


DEFAULT = Schedule()
"""T = 1000 linear betas from 1e-4 to 0.02: guided-diffusion's and DDPM's default, and what
checkpoints written before schedules were stored were trained with."""

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


def ddim_steps(M: int, schedule: Schedule = DEFAULT) -> Steps:
    """M timesteps of ``schedule`` spread evenly over [0, T-1], both ends included (as
    Asyrp does). Starting at T-1 means the chain starts from (almost) pure noise."""
    T = schedule.T
    if not 1 <= M <= T:
        raise ValueError(f"number of DDIM steps M={M} must be between 1 and T={T} (this DM's timesteps): choose "
                         "fewer steps (--set M=..., -p M ...)")
    abar_all = schedule.alphas_cumprod()
    t = torch.linspace(0, T - 1, M, dtype=torch.float64).round().long().unique().flip(0)
    if len(t) != M:
        raise ValueError(f"M={M} steps do not fit in T={T} distinct timesteps")
    abar = abar_all[t]
    abar_prev = torch.cat([abar[1:], torch.ones(1, dtype=torch.float64)])
    return Steps(t=t, abar=abar, abar_prev=abar_prev)


def edit_steps(M: int, t_stop: int, schedule: Schedule = DEFAULT) -> Steps:
    """The M-step DDIM chain of ``schedule`` that directions edit, checked to shift at least
    one node (t > ``t_stop``): a preset's t_stop at or above a DM's own T - 1 (a DM trained
    with T = 100 under t_stop = 400) would train and edit nothing."""
    steps = ddim_steps(M, schedule)
    if shifted_steps(steps, t_stop) == 0:
        raise ValueError(f"t_stop={t_stop} shifts none of the M={M} steps of this DM's schedule (T={schedule.T}: "
                         f"its chain starts at t={int(steps.t[0])}): choose a t_stop below {int(steps.t[0])} "
                         f"(--set t_stop=..., -p t_stop ...; the paper uses 400 of T=1000)")
    return steps


def shifted_steps(steps: Steps, t_stop: int) -> int:
    """How many nodes of a chain take the asymmetric (shifted) step: those with t > t_stop
    (the first ones, since a chain runs from T down)."""
    return int((steps.t > t_stop).sum())
