"""Shared fixtures: small guided-diffusion UNets whose zero-initialised layers are perturbed.

A fresh ``UNetModel`` outputs exactly zero (its last convolutions are zero-initialised),
which would make every hook and gradient test pass vacuously.
"""

import dataclasses
import json

import pytest
import torch

from hdisc.backbone import build_unet, load_dm, perturb_zero_params, save_unet
from hdisc.direction_set import DirectionSet
from hdisc.discovery import DiscoveryModel
from hdisc.dm import DM
from hdisc.presets import get_preset
from hdisc.training import train_discovery


@pytest.fixture
def smoke():
    return get_preset("mnist32", "smoke")


@pytest.fixture
def unet(smoke):
    """The smoke DM (T = 1000 linear betas) with its zero-initialised layers perturbed."""
    torch.manual_seed(0)
    return DM(perturb_zero_params(build_unet(smoke.unet), std=0.05), smoke.unet).eval()


@pytest.fixture
def discovery(smoke, unet):
    torch.manual_seed(1)
    model = DiscoveryModel(smoke.unet, smoke.discovery)
    perturb_zero_params(model.shift, std=0.05, seed=2)  # non-zero heads so shifts matter
    return model


@pytest.fixture
def dirs(smoke, discovery, unet):
    """The perturbed learned directions on the smoke training chain (4 steps, t_stop 400)."""
    return DirectionSet.of(discovery.shift, smoke.discovery, unet)


@pytest.fixture
def diffusers_folder(tmp_path):
    """A small random UNet2DModel (32 px, one channel) saved the way google/ddpm-* are."""
    from diffusers import UNet2DModel  # the optional backbone: only its tests need it

    torch.manual_seed(0)
    net = UNet2DModel(sample_size=32, in_channels=1, out_channels=1, block_out_channels=(32, 64), layers_per_block=1,
                      down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                      norm_num_groups=8)
    perturb_zero_params(net, std=0.05)
    net.save_pretrained(tmp_path / "ddpm")
    (tmp_path / "ddpm" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
         "beta_start": 0.0001, "beta_end": 0.02, "prediction_type": "epsilon"}))
    return tmp_path / "ddpm"


@pytest.fixture
def diffusers_unet(diffusers_folder):
    return load_dm(diffusers_folder)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Paths of a smoke DM (perturbed so it is not all zeros) and of a direction model
    trained two steps on it, as notebook parameters."""
    root = tmp_path_factory.mktemp("trained")
    cfg = get_preset("mnist32", "smoke")
    torch.manual_seed(0)
    unet = DM(perturb_zero_params(build_unet(cfg.unet), std=0.05), cfg.unet).eval()
    save_unet(unet.net, cfg.unet, root / "dm_ema.pt")
    train_discovery(unet, dataclasses.replace(cfg.discovery, head_init_std=0.05), root, steps=2,
                    progress=False)
    return {"directions": str(root / "directions.pt"), "dm_checkpoint": str(root / "dm_ema.pt")}
