"""More than one process: torchrun's environment, the process group, averages over ranks.

Under ``torchrun --nproc_per_node N`` every process (rank) draws the same random numbers
for a step's whole batch and works on its share of the rows; the gradients are averaged
over ranks, so N processes train the weights one process would with the same global batch
and seed (up to float rounding). Only rank 0 writes files.

DM pretraining averages with PyTorch's ``DistributedDataParallel``. Discovery training
cannot: its gradient reaches the shift block through :func:`hdisc.chain.backprop_chain`'s
node-by-node backward calls, which DDP's one-backward-per-forward reducer does not follow,
so it averages with :func:`average_gradients` after each side's backward (one all-reduce of
all gradients, what DDP does bucket by bucket). Its reconstructor's BatchNorm takes the
whole batch's statistics (:class:`GlobalBatchNorm`): torch's ``SyncBatchNorm`` refuses CPU
tensors, and per-rank statistics would train another model than one process does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import nn


def distributed(device: str | torch.device = "cpu") -> tuple[int, int, torch.device]:
    """``(rank, world size, device)``: under torchrun (``WORLD_SIZE`` > 1) the process
    group is initialised (nccl on CUDA, gloo on the CPU) and a CUDA device becomes this
    rank's local GPU; otherwise ``(0, 1, device)``."""
    device = torch.device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over all ranks (``x`` itself in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


def ranks() -> int:
    """How many processes train together (1 without an initialised process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Replace each parameter's ``.grad`` by its mean over ranks (nothing in one process).

    Every rank must hold gradients for the same parameters (None ones are skipped on all).
    A NaN on one rank reaches every rank, so the non-finite guard stops them all."""
    if ranks() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ranks()
    for g, new in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
        g.copy_(new.view_as(g))


class GlobalBatchNorm(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are the whole batch's, over all ranks.

    x [B_rank, C, H, W] -> same shape. In one process, or in eval mode, it is
    ``BatchNorm2d``; under torchrun the mean and (biased) variance are all-reduced with
    autograd's ``all_reduce`` (two passes, as one process computes them), so the gradient
    also flows through the other ranks' rows. Same parameters and buffers as BatchNorm2d.
    Under bfloat16 autocast x arrives in bfloat16: the statistics and the normalisation are
    computed in float32 (the buffers' dtype, as ``BatchNorm2d`` does) and y returns in x's dtype.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or ranks() == 1:
            return super().forward(x)
        dtype, x = x.dtype, x.float()
        dims, shape = (0, 2, 3), (1, -1, 1, 1)
        count = torch.tensor(float(x.numel() // x.shape[1]), device=x.device)
        dist.all_reduce(count)
        mean = dist_nn.all_reduce(x.sum(dims)) / count
        var = dist_nn.all_reduce(((x - mean.view(shape)) ** 2).sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = 1.0 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * count / (count - 1), momentum)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return (y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y).to(dtype)


def global_batch_norm(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm2d`` replaced, in place, by a :class:`GlobalBatchNorm`
    holding the same parameters and buffers (checkpoints load either way)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            new.load_state_dict(child.state_dict())
            if child.affine:  # the very tensors an optimiser may already hold
                new.weight, new.bias = child.weight, child.bias
            setattr(module, name, new.to(child.running_mean.device) if child.track_running_stats else new)
        else:
            global_batch_norm(child)
    return module
