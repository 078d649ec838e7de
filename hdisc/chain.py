"""Back-propagation through a whole sampling chain within a memory budget (paper section 4.4).

A chain is ``x_{i+1} = step(x_i, i)`` for i = 0..n-1. Vanilla autograd keeps every step's
activations alive until the backward pass, so memory grows linearly with n. The paper's
chain keeps only the nodes and recomputes each step during the backward pass, so memory
stays flat at the price of a second forward pass. Between the two:

1. :func:`record_chain` runs the chain once. With a ``budget`` of bytes it keeps the autograd
   graphs of as many of the *last* steps as fit (each step's saved tensors are counted as it
   runs) and only the nodes of the others;
2. the caller computes a loss on the last node and its gradient g = dL/dx_n;
3. :func:`backprop_chain` walks back: a kept step back-propagates g through its graph; any
   other step is recomputed from its recorded input with gradients enabled first. Each
   accumulates ``.grad`` into every trainable module the step used and carries
   g = dL/dx_i to the step before.

``budget=0`` is the paper's flat-memory chain; ``budget=math.inf`` keeps every graph (vanilla
autograd's memory and time); ``"auto"`` takes :data:`AUTO_SHARE` of the memory free on the
device when the chain is recorded. Kept graphs never exceed the budget; the backward pass
adds at most one recomputed step's graph. The gradients equal vanilla autograd's: a kept step
and a recomputed one run the same operations on the same input. Nothing here knows about
diffusion: any ``step`` works, provided it is deterministic (the same input gives the same
output when recomputed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

Step = Callable[[torch.Tensor, int], torch.Tensor]
"""``step(x_i [B, ...], i) -> x_{i+1} [B, ...]``."""
Budget = float | int | str
"""Bytes of kept autograd graphs: a number >= 0 (``math.inf``: all), or ``"auto"``."""
AUTO_SHARE = 0.5
"""The share of the device's free memory that ``budget="auto"`` gives the kept graphs (the
rest stays for the loss's own networks, the optimisers and other processes)."""


def free_memory(device: str | torch.device) -> int:
    """Bytes free on ``device`` now: CUDA's free memory, or Linux's ``MemAvailable``."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    info = Path("/proc/meminfo")
    for line in info.read_text().splitlines() if info.is_file() else []:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("budget='auto' cannot read this machine's free memory (no /proc/meminfo): give the chain "
                       "budget in bytes, e.g. budget=8e9")


def check_budget(budget: Budget) -> None:
    """Raise a ValueError naming the setting, its valid values and a fix."""
    ok = budget == "auto" if isinstance(budget, str) else (
        isinstance(budget, int | float) and not isinstance(budget, bool) and not math.isnan(budget) and budget >= 0)
    if not ok:
        raise ValueError(f"chain budget={budget!r} is invalid: valid a number of bytes >= 0 (0: recompute every "
                         "step, the paper's flat-memory chain; inf: keep every step's graph, vanilla autograd's "
                         "memory) or 'auto' (half the device's free memory)")


def parse_budget(text: str) -> Budget:
    """A budget from the command line: ``auto``, ``inf`` or a number of bytes (``8e9``)."""
    if text == "auto":
        return text
    try:
        budget = float(text)
    except ValueError:
        budget = text
    check_budget(budget)
    return budget


def resolve_budget(budget: Budget, device: str | torch.device) -> float:
    """``budget`` in bytes (``"auto"``: :data:`AUTO_SHARE` of :func:`free_memory`)."""
    check_budget(budget)
    return AUTO_SHARE * free_memory(device) if budget == "auto" else float(budget)


@dataclass
class Tape:
    """A recorded chain: its nodes x_0..x_n (detached) and the graphs of the kept steps,
    {i: (input leaf x_i, output x_{i+1} with its graph)}; ``kept_bytes`` is what they hold."""

    nodes: list[torch.Tensor]
    graphs: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    kept_bytes: int = 0

    @property
    def steps(self) -> int:
        return len(self.nodes) - 1


class _SavedBytes:
    """Counts the bytes of the tensors autograd saves while it is active (each storage once;
    parameters, which exist anyway, not)."""

    def __init__(self):
        self.bytes, self._seen = 0, set()
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter):
            storage = t.untyped_storage()
            if storage.data_ptr() not in self._seen:
                self._seen.add(storage.data_ptr())
                self.bytes += storage.nbytes()
        return t

    def __enter__(self) -> _SavedBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


def _kept_step(step: Step, x: torch.Tensor, i: int, need_x: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Run step i with its graph: (input leaf, output, bytes the graph holds)."""
    leaf = x.detach().requires_grad_(need_x)
    with torch.enable_grad(), _SavedBytes() as saved:
        y = step(leaf, i)
    return leaf, y, saved.bytes


def record_chain(step: Step, x: torch.Tensor, n: int, budget: Budget = 0,
                 input_grad: bool = False) -> Tape:
    """Run ``n`` steps from ``x`` [B, ...], keeping the graphs of the last steps that fit in
    ``budget`` bytes (see the module's docstring); returns the :class:`Tape`.

    The first step runs with its graph to measure a step's cost (and drops it unless every
    step fits); from then on the steps that cannot all fit run without gradients. A kept step
    whose graph would overflow the budget is dropped too (it is recomputed in the backward
    pass). ``input_grad``: keep graphs that also give dL/dx_0.
    """
    limit = resolve_budget(budget, x.device)
    tape = Tape([x.detach()])
    first_kept = n
    for i in range(n):
        node = tape.nodes[-1]
        if limit > 0 and (i == 0 or i >= first_kept):
            leaf, y, cost = _kept_step(step, node, i, i > 0 or input_grad)
            if i == 0:  # the first step's cost stands for every step's
                first_kept = 0 if math.isinf(limit) else n - min(n, int(limit // max(cost, 1)))
            if i >= first_kept and tape.kept_bytes + cost <= limit:
                tape.graphs[i], tape.kept_bytes = (leaf, y), tape.kept_bytes + cost
            y = y.detach()
        else:
            with torch.no_grad():
                y = step(node, i)
        tape.nodes.append(y)
    return tape


def run_chain(step: Step, x: torch.Tensor, n: int) -> torch.Tensor:
    """Run ``n`` steps from ``x`` with autograd on (the vanilla reference); returns x_n."""
    for i in range(n):
        x = step(x, i)
    return x


def backprop_chain(step: Step, tape: Tape, grad: torch.Tensor, input_grad: bool = False) -> torch.Tensor | None:
    """Back-propagate ``grad`` = dL/dx_n through the recorded chain, one step at a time.

    Accumulates into the ``.grad`` of every parameter the steps use, exactly as
    ``run_chain(...).backward(grad)`` would, and frees each kept graph as it passes it.
    Returns dL/dx_0 if ``input_grad`` (the tape must have been recorded with it when it
    kept the first step's graph), else None (and skips that last input gradient).
    """
    for i in reversed(range(tape.steps)):
        need_x = i > 0 or input_grad
        if i in tape.graphs:
            x, y = tape.graphs.pop(i)
        else:
            x = tape.nodes[i].detach().requires_grad_(need_x)
            with torch.enable_grad():
                y = step(x, i)
        if not y.requires_grad:  # nothing trainable and no input gradient wanted
            return None
        y.backward(grad)
        grad = x.grad if need_x else None
    return grad
