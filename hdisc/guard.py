"""Numeric guards of training: a NaN or infinity stops a run before it reaches the weights."""

from __future__ import annotations

from collections.abc import Iterable

import torch


class NonFiniteError(FloatingPointError):
    """A training step produced a NaN or infinite loss or gradient; nothing was saved."""


def check_finite(what: str, value: torch.Tensor | float) -> None:
    """Raise :class:`NonFiniteError` naming ``what`` if ``value`` holds a NaN or infinity."""
    value = torch.as_tensor(value).detach()
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteError(f"non-finite {what} ({float(value.flatten()[0])})")


def check_finite_grads(what: str, params: Iterable[torch.nn.Parameter]) -> None:
    """Raise :class:`NonFiniteError` if any gradient of ``params`` holds a NaN or infinity."""
    grads = [p.grad for p in params if p.grad is not None]
    if grads and not bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()):
        raise NonFiniteError(f"non-finite gradient of the {what}")
