"""Which float format a training step computes in.

``float32`` (the default, and the paper's) or ``bfloat16``: torch autocast runs the
convolutions and matrix products in bfloat16 and keeps reductions, norms and losses in
float32; weights, optimiser state and checkpoints stay float32. Whether bfloat16 is faster
depends on the machine, so it is asked for, never chosen silently: ``auto`` asks for the
choice by capability (:func:`resolve_precision`), and a run records the precision it chose.
Record and recomputation of a chain both run inside the same context, so chain
back-propagation stays exact against vanilla autograd at the same precision.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import torch

PRECISIONS = ("float32", "bfloat16")
CHOICES = (*PRECISIONS, "auto")
FAST_BF16_FLAG = "amx_bf16"
"""The CPU flag under which bfloat16 autocast measured faster (``results/mnist32-cpu/precision.json``:
1.6x per discovery step on a Xeon with AMX tiles; 0.69-0.76x on one with AVX512-BF16 alone)."""


def check_precision(precision: str, choices: tuple[str, ...] = PRECISIONS) -> None:
    """Raise a ValueError naming the setting, its valid values and a fix."""
    if precision not in choices:
        raise ValueError(f"precision must be one of {choices}, got {precision!r}: float32 computes as the paper, "
                         "bfloat16 runs convolutions and matrix products in bfloat16 (faster on some machines)"
                         + (", auto picks bfloat16 on a CPU with AMX bfloat16 tiles and float32 elsewhere"
                            if "auto" in choices else ""))


def cpu_flags() -> list[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty elsewhere)."""
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.is_file() else ""
    return next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """``precision`` itself, or for ``"auto"`` the one that measured faster on a machine like
    this: ``bfloat16`` on a CPU with :data:`FAST_BF16_FLAG`, ``float32`` on any other CPU and
    on GPUs (where the paper's float32 is not the bottleneck and no comparison was recorded)."""
    check_precision(precision, CHOICES)
    if precision != "auto":
        return precision
    return "bfloat16" if torch.device(device).type == "cpu" and FAST_BF16_FLAG in cpu_flags() else "float32"


def in_float32(device: str | torch.device) -> AbstractContextManager:
    """Compute in float32 inside a bfloat16 autocast region: for differences of nearly equal
    outputs, which bfloat16's 8-bit mantissa (relative rounding about 0.4%) would bury."""
    return torch.autocast(torch.device(device).type, enabled=False)


def compute_in(precision: str, device: str | torch.device) -> AbstractContextManager:
    """The autocast context for ``precision`` on ``device`` (a no-op for float32)."""
    check_precision(precision)
    # no cast cache: with it, vanilla autograd sums a weight's gradients over the chain's steps
    # in bfloat16 (one cached copy feeds every step), while chain backprop sums them in float32
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bfloat16",
                          cache_enabled=False)
