"""One type for a set of K directions in h-space: what shifts h, and the chain it edits on.

A *shift* (:data:`hdisc.sampling.Shift`) is anything that returns dh per unit strength for
``(h_t, emb_t, t, k)``: the learned :class:`hdisc.discovery.ShiftBlock`, or
:class:`FixedDirections` (a matrix of global directions, per-timestep directions, or
image-specific ones such as the Jacobian's). A :class:`DirectionSet` bundles a shift with
its number of directions K, its strength range S, the DDIM chain it edits on (steps,
t_stop, clip) and the factor on s that keeps an edit the size it had on the chain the
directions were made for. Every chapter, the explorer, the interpretability evaluation
and real-image editing take a DirectionSet; :class:`hdisc.sampling.Shifted` is the one
eq. 2 adapter behind it.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .discovery import GlobalShift, ShiftBlock
from .dm import DM
from .presets import DiscoveryConfig
from .sampling import Shift, Shifted, sample_ddim
from .schedule import Steps, shifted_steps


def strengths(S: float, n: int = 5) -> torch.Tensor:
    """``n`` strengths uniform in [-S, S] (the middle one is 0 when n is odd)."""
    return torch.linspace(-S, S, n)


class FixedDirections(nn.Module):
    """Directions that do not depend on h: a shift ``(h, emb, t, k) -> dh`` from a table.

    ``dirs``: one direction per k, [K, C, H, W], used at every shifted timestep (global
    directions), or ``{t: [K, C, H, W]}``, one set per shifted timestep (a timestep not in
    the table raises). With ``rel`` each direction is rescaled, per image, to ``rel`` times
    the root mean square of that image's h, so at strength s, rms(dh) = |s| rel rms(h): how
    directions found by different methods get comparable strengths. Without it, dh is the
    table's entry itself (times s).
    """

    def __init__(self, dirs: torch.Tensor | dict[int, torch.Tensor], rel: float | None = None):
        super().__init__()
        table = torch.stack(list(dirs.values())) if isinstance(dirs, dict) else dirs[None]
        if not torch.isfinite(table).all():
            raise ValueError("FixedDirections: the directions hold NaN or infinite values")
        if rel is not None:
            table = table / table.flatten(2).pow(2).mean(2).sqrt().clamp_min(1e-12)[..., None, None, None]
        self.register_buffer("table", table.detach())  # [T_n, K, C, H, W]; no graph (e.g. the Jacobian's)
        self.register_buffer("timesteps", torch.tensor(list(dirs), dtype=torch.long) if isinstance(dirs, dict)
                             else torch.empty(0, dtype=torch.long))
        self.rel, self.K = rel, table.shape[1]

    def forward(self, h: torch.Tensor, emb: torch.Tensor, t: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """h [B, C, H, W], emb (unused), t [B], k [B] -> dh [B, C, H, W]."""
        if len(self.timesteps):
            hit = t.to(self.timesteps.device)[:, None] == self.timesteps[None]
            if not hit.any(1).all():
                raise ValueError(f"FixedDirections has directions for timesteps {self.timesteps.tolist()}, "
                                 f"not for {sorted(set(t[~hit.any(1)].tolist()))}: edit on the chain the "
                                 "table was measured on")
            dh = self.table[hit.float().argmax(1), k.to(self.table.device)]
        else:
            dh = self.table[0, k.to(self.table.device)]
        if self.rel is None:
            return dh
        return dh * (self.rel * h.pow(2).mean((1, 2, 3)).sqrt())[:, None, None, None]


@dataclass(frozen=True)
class DirectionSet:
    """K directions and the DDIM chain they edit on (eq. 2 of the paper).

    ``shift`` gives dh per unit strength; an edit at strength s shifts h by
    ``s * scale * shift(h, emb, t, k)`` at every step with t > ``t_stop`` of ``steps``,
    clipping predicted x_0 to [-1, 1] when ``clip``. ``names`` label the directions in
    menus and tables (default: their indices).
    """

    shift: Shift
    K: int
    S: float
    steps: Steps
    t_stop: int
    clip: bool = True
    scale: float = 1.0
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, shift: Shift, cfg: DiscoveryConfig, dm: DM, names: tuple[str, ...] | list[str] = ()
           ) -> DirectionSet:
        """``shift`` on the training chain of ``cfg`` on ``dm`` (``cfg.M`` steps of the DM's own
        schedule; its t_stop, K, S, clip): the one way to put directions on a DM."""
        return cls(shift, cfg.K, cfg.S, dm.edit_steps(cfg.M, cfg.t_stop), cfg.t_stop, cfg.clip, 1.0, tuple(names))

    def label(self, k: int) -> str:
        """The name of direction ``k``."""
        return self.names[k] if self.names else str(k)

    def on(self, steps: Steps) -> DirectionSet:
        """The same directions on another chain, with s rescaled so an edit keeps its size.

        Each asymmetric step moves x by about sqrt(1 - abar_t) times the change of eps,
        whatever the step size, so an edit grows with the number of shifted steps: on a
        100-step chain (60 shifted for t_stop 400) the same s moves the image about 20 times
        as far as on a 5-step chain (3 shifted). The scale is multiplied by shifted steps
        here over shifted steps there.
        """
        ratio = shifted_steps(self.steps, self.t_stop) / max(shifted_steps(steps, self.t_stop), 1)
        return dataclasses.replace(self, steps=steps, scale=self.scale * ratio)

    def with_shift(self, shift: Shift, K: int | None = None, names: tuple[str, ...] = ()) -> DirectionSet:
        """Other directions on the same chain and scale (e.g. a direction's mean over samples).
        K defaults to the shift's own ``K`` (a ShiftBlock's or FixedDirections'), else this set's."""
        K = getattr(shift, "K", self.K) if K is None else K
        return dataclasses.replace(self, shift=shift, K=K, names=tuple(names))

    def at_size(self, rel: float) -> DirectionSet:
        """The same directions, each rescaled so that at strength s it moves h by exactly
        |s| ``rel`` rms(h) (per image and step): one step size for directions of any origin.
        A :class:`hdisc.discovery.ShiftBlock` gets ``norm='fixed'``, :class:`FixedDirections`
        built with a ``rel`` get this one; any other shift raises."""
        if not rel > 0:
            raise ValueError(f"rel must be > 0 (the size of dh relative to rms(h) at strength 1), got {rel}")
        shift = copy.deepcopy(self.shift)
        if isinstance(shift, ShiftBlock):
            shift.norm, shift.rms = "fixed", rel
        elif isinstance(shift, GlobalShift):
            shift.rms = rel
        elif isinstance(shift, FixedDirections) and shift.rel is not None:
            shift.rel = rel
        else:
            raise TypeError(f"at_size rescales a ShiftBlock or FixedDirections built with rel, not "
                            f"{type(shift).__name__}{' without rel' if isinstance(shift, FixedDirections) else ''}: "
                            "build the table with FixedDirections(dirs, rel)")
        return dataclasses.replace(self, shift=shift)

    def to(self, device: str | torch.device) -> DirectionSet:
        """The set with its shift's weights on ``device``."""
        return dataclasses.replace(self, shift=self.shift.to(device)) if isinstance(self.shift, nn.Module) else self

    def model(self, unet: nn.Module, k: torch.Tensor, s: torch.Tensor, references: int = 0) -> Shifted:
        """The eps-model of eq. 2 for directions k [B] at strengths s [B] (see :class:`Shifted`)."""
        return Shifted(unet, self.shift, k, s * self.scale, self.t_stop, references)

    @torch.no_grad()
    def plain(self, unet: nn.Module, x_T: torch.Tensor) -> torch.Tensor:
        """The unedited samples x_0 [B, C, H, W] of x_T [B, C, H, W] on this chain."""
        return sample_ddim(unet, x_T, self.steps, clip=self.clip, disable=True)

    @torch.no_grad()
    def edit(self, unet: nn.Module, x_T: torch.Tensor, k: int | torch.Tensor, s: float | torch.Tensor
             ) -> torch.Tensor:
        """x'_0 [B, C, H, W] from x_T [B, C, H, W] along direction ``k`` at strength ``s``
        (each a number or one value per row)."""
        b = len(x_T)
        k = torch.as_tensor(k, device=x_T.device).long().expand(b)
        s = torch.as_tensor(s, device=x_T.device, dtype=x_T.dtype).expand(b)
        return sample_ddim(self.model(unet, k, s), x_T, self.steps, clip=self.clip, disable=True)

    @torch.no_grad()
    def sweep(self, unet: nn.Module, x_T: torch.Tensor, k: int, svals: torch.Tensor) -> torch.Tensor:
        """Edits of every row of x_T [B, C, H, W] at every strength of ``svals`` [n]:
        images [B, n, C, H, W] (one batch of B * n through the chain)."""
        b, n = len(x_T), len(svals)
        out = self.edit(unet, x_T.repeat_interleave(n, 0), k, svals.to(x_T).repeat(b))
        return out.view(b, n, *x_T.shape[1:])

    @torch.no_grad()
    def sweeps(self, unet: nn.Module, x_T: torch.Tensor, svals: torch.Tensor, progress: bool | None = None
               ) -> torch.Tensor:
        """Every direction's sweep over ``svals`` [n] on the rows of x_T [N, C, H, W]:
        images [K, N, n, C, H, W] on the CPU (the input of :func:`hdisc.interpret.evaluate`)."""
        return torch.stack([self.sweep(unet, x_T, k, svals).cpu()
                            for k in tqdm(range(self.K), desc="sweeps", disable=progress is False)])
