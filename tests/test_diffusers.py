"""diffusers' UNet2DModel as a backbone: loaded from a local folder, h through hooks, exact
chain gradients, and the whole pipeline at smoke scale."""

import dataclasses
import math

import pytest
import torch
from diffusers import UNet2DModel

from hdisc.backbone import capture_h, load_dm, perturb_zero_params
from hdisc.chain import backprop_chain, record_chain, run_chain
from hdisc.direction_set import DirectionSet
from hdisc.directions import invert
from hdisc.discovery import DiscoveryModel
from hdisc.sampling import Shifted, ddim_step
from hdisc.schedule import Schedule
from hdisc.training import train_discovery
from hdisc.widgets import explore


def test_a_save_pretrained_folder_loads_with_its_schedule(diffusers_folder, smoke):
    unet = load_dm(diffusers_folder)
    cfg = unet.config
    assert unet.schedule == Schedule(kind="cosine")
    assert cfg.h_shape == (64, 16, 16) and unet.in_channels == 1 and unet.image_size == 32
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([999, 10])
    with torch.no_grad(), capture_h(unet) as store:
        eps = unet(x, t)
    assert eps.shape == x.shape and store[0].shape == (2, *cfg.h_shape)
    assert torch.equal(eps, UNet2DModel.from_pretrained(diffusers_folder, low_cpu_mem_usage=False)(x, t).sample)
    with pytest.raises(ValueError, match="another model than the configured one"):
        load_dm(diffusers_folder, dataclasses.replace(cfg, model_channels=64, channel_mult=(1, 1)))
    (diffusers_folder / "scheduler_config.json").unlink()
    with pytest.warns(UserWarning, match="no scheduler_config.json"):
        load_dm(diffusers_folder)


def test_chain_backprop_equals_vanilla_on_diffusers(diffusers_folder, smoke):
    unet = load_dm(diffusers_folder)
    cfg = unet.config
    unet.requires_grad_(False)
    torch.manual_seed(1)
    model = DiscoveryModel(cfg, smoke.discovery)
    perturb_zero_params(model.shift, std=0.05, seed=2)
    steps = unet.steps(4)
    eps_model = Shifted(unet, model.shift, torch.tensor([0, 3]), torch.tensor([2.0, -4.0]), 400)

    def step(x, i):
        return ddim_step(eps_model, x, steps, i, clip=False)

    z, target = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32)
    (run_chain(step, z, len(steps)) - target).square().sum().backward()
    vanilla = {n: p.grad.clone() for n, p in model.shift.named_parameters()}
    for budget in (0, record_chain(step, z, 1, math.inf).kept_bytes * 2, math.inf):  # none, half, all kept
        model.shift.zero_grad(set_to_none=True)
        tape = record_chain(step, z, len(steps), budget)
        x_c = tape.nodes[-1].requires_grad_(True)
        (x_c - target).square().sum().backward()
        backprop_chain(step, tape, x_c.grad)
        for name, p in model.shift.named_parameters():
            assert torch.equal(vanilla[name], p.grad), (budget, name)


def test_the_pipeline_runs_on_diffusers(diffusers_folder, smoke, tmp_path):
    unet = load_dm(diffusers_folder)
    d = dataclasses.replace(smoke.discovery, head_init_std=0.05)
    out = tmp_path / "directions"
    summary = train_discovery(unet, d, out, steps=2, progress=False)
    assert summary["steps"] == 2
    ex = explore(out / "directions.pt", dm=diffusers_folder, real=torch.rand(1, 1, 32, 32) * 2 - 1, invert_steps=4)
    ex.strength.value = d.S
    left, right = ex.render()
    assert not torch.allclose(left, right)
    ex.source.value = "real image"  # DDIM inversion on the diffusers model
    assert 0 in ex._inverted
    x_T, recon = invert(unet, torch.rand(1, 1, 32, 32) * 2 - 1, unet.steps(4))
    assert x_T.shape == recon.shape == (1, 1, 32, 32)
    dirs = DirectionSet.of(ex.dirs.shift, d, unet)
    assert dirs.sweep(unet, x_T, 1, torch.tensor([-5.0, 0.0, 5.0])).shape == (1, 3, 1, 32, 32)
