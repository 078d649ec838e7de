"""More than one process: torchrun's environment, the process group, averages over ranks.

Under ``torchrun --nproc_per_node N`` every process (rank) draws the same random numbers
for a step's whole batch and works on its share of the rows; PyTorch's
``DistributedDataParallel`` averages the gradients, so N processes train the weights one
process would with the same global batch and seed (up to float rounding). Only rank 0
writes files.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


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
