"""Back-propagation through a whole sampling chain, node by node (paper section 4.4).

A chain is ``x_{i+1} = step(x_i, i)`` for i = 0..n-1. Vanilla autograd keeps every step's
activations alive until the backward pass, so memory grows linearly with n. Here:

1. :func:`record_chain` runs the chain without gradients and keeps only the nodes;
2. the caller computes a loss on the last node and its gradient g = dL/dx_n;
3. :func:`backprop_chain` walks back: it recomputes one step from its recorded input with
   gradients enabled, back-propagates g through it (a vector-Jacobian product that also
   accumulates ``.grad`` into every trainable module the step used), and carries
   g = dL/dx_i to the step before.

Only one step's activations are alive at a time, and the gradients equal vanilla
autograd's. Nothing here knows about diffusion: any ``step`` works, provided it is
deterministic (the same input gives the same output when recomputed).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Step = Callable[[torch.Tensor, int], torch.Tensor]
"""``step(x_i [B, ...], i) -> x_{i+1} [B, ...]``."""


@torch.no_grad()
def record_chain(step: Step, x: torch.Tensor, n: int) -> list[torch.Tensor]:
    """Run ``n`` steps from ``x`` without gradients; returns the n + 1 nodes x_0..x_n."""
    nodes = [x]
    for i in range(n):
        nodes.append(step(nodes[-1], i))
    return nodes


def run_chain(step: Step, x: torch.Tensor, n: int) -> torch.Tensor:
    """Run ``n`` steps from ``x`` with autograd on (the vanilla reference); returns x_n."""
    for i in range(n):
        x = step(x, i)
    return x


def backprop_chain(step: Step, nodes: list[torch.Tensor], grad: torch.Tensor,
                   input_grad: bool = False) -> torch.Tensor | None:
    """Back-propagate ``grad`` = dL/dx_n through the recorded chain, one step at a time.

    Accumulates into the ``.grad`` of every parameter the steps use, exactly as
    ``run_chain(...).backward(grad)`` would. Returns dL/dx_0 if ``input_grad``, else
    None (and skips that last input gradient).
    """
    for i in reversed(range(len(nodes) - 1)):
        need_x = i > 0 or input_grad
        x = nodes[i].detach().requires_grad_(need_x)
        with torch.enable_grad():
            y = step(x, i)
        if not y.requires_grad:  # nothing trainable and no input gradient wanted
            return None
        y.backward(grad)
        grad = x.grad if need_x else None
    return grad
