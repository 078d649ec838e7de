"""Which float format a training step computes in.

``float32`` (the default, and the paper's) or ``bfloat16``: torch autocast runs the
convolutions and matrix products in bfloat16 and keeps reductions, norms and losses in
float32; weights, optimiser state and checkpoints stay float32. Whether bfloat16 is faster
depends on the machine (see ``scripts/bench_precision.py``), so it is asked for, never
chosen silently. Record and recomputation of a chain both run inside the same context, so
chain back-propagation stays exact against vanilla autograd at the same precision.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

PRECISIONS = ("float32", "bfloat16")


def check_precision(precision: str) -> None:
    """Raise a ValueError naming the setting, its valid values and a fix."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}: float32 computes as the paper, "
                         "bfloat16 runs convolutions and matrix products in bfloat16 (faster on some machines)")


def compute_in(precision: str, device: str | torch.device) -> AbstractContextManager:
    """The autocast context for ``precision`` on ``device`` (a no-op for float32)."""
    check_precision(precision)
    # no cast cache: with it, vanilla autograd sums a weight's gradients over the chain's steps
    # in bfloat16 (one cached copy feeds every step), while chain backprop sums them in float32
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bfloat16",
                          cache_enabled=False)
