"""Shared fixtures: small guided-diffusion UNets whose zero-initialised layers are perturbed.

A fresh ``UNetModel`` outputs exactly zero (its last convolutions are zero-initialised),
which would make every hook and gradient test pass vacuously.
"""

import pytest
import torch

from hdisc.backbone import build_unet
from hdisc.presets import get_preset


def perturbed(module: torch.nn.Module, seed: int = 0, std: float = 0.05) -> torch.nn.Module:
    """Give every all-zero parameter small Gaussian values (deterministic in ``seed``)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


@pytest.fixture
def smoke():
    return get_preset("mnist32", "smoke")


@pytest.fixture
def unet(smoke):
    torch.manual_seed(0)
    return perturbed(build_unet(smoke.unet)).eval()
