"""Shared fixtures: small guided-diffusion UNets whose zero-initialised layers are perturbed.

A fresh ``UNetModel`` outputs exactly zero (its last convolutions are zero-initialised),
which would make every hook and gradient test pass vacuously.
"""

import pytest
import torch

from hdisc.backbone import build_unet, perturb_zero_params
from hdisc.discovery import DiscoveryModel
from hdisc.presets import get_preset


@pytest.fixture
def smoke():
    return get_preset("mnist32", "smoke")


@pytest.fixture
def unet(smoke):
    torch.manual_seed(0)
    return perturb_zero_params(build_unet(smoke.unet), std=0.05).eval()


@pytest.fixture
def discovery(smoke, unet):
    torch.manual_seed(1)
    model = DiscoveryModel(smoke.unet, smoke.discovery)
    perturb_zero_params(model.shift, std=0.05, seed=2)  # non-zero heads so shifts matter
    return model
