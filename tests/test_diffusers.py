"""diffusers' UNet2DModel as a backbone: loaded from a local folder, h through hooks, exact
chain gradients, and the whole pipeline at smoke scale."""

import dataclasses
import json

import pytest
import torch
from diffusers import UNet2DModel

from hdisc.backbone import asymmetric, capture_h, load_unet, perturb_zero_params, shift_h
from hdisc.chain import backprop_chain, record_chain, run_chain
from hdisc.direction_set import DirectionSet
from hdisc.directions import invert
from hdisc.discovery import DiscoveryModel
from hdisc.sampling import Shifted, ddim_step
from hdisc.schedule import Schedule, ddim_steps, schedule_of
from hdisc.training import train_discovery
from hdisc.widgets import explore


@pytest.fixture
def folder(tmp_path):
    """A small random UNet2DModel (32 px, one channel) saved the way google/ddpm-* are."""
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


def test_a_save_pretrained_folder_loads_with_its_schedule(folder, smoke):
    unet, cfg = load_unet(folder)
    assert schedule_of(unet) == Schedule(kind="cosine")
    assert cfg.h_shape == (64, 16, 16) and unet.in_channels == 1 and unet.image_size == 32
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([999, 10])
    with torch.no_grad(), capture_h(unet) as store:
        eps = unet(x, t)
    assert eps.shape == x.shape and store[0].shape == (2, *cfg.h_shape)
    assert torch.equal(eps, UNet2DModel.from_pretrained(folder, low_cpu_mem_usage=False)(x, t).sample)
    with pytest.raises(ValueError, match="another model than the configured one"):
        load_unet(folder, dataclasses.replace(cfg, model_channels=64, channel_mult=(1, 1)))
    (folder / "scheduler_config.json").unlink()
    with pytest.warns(UserWarning, match="no scheduler_config.json"):
        load_unet(folder)


def test_asymmetric_on_diffusers_matches_two_separate_passes(folder):
    unet, cfg = load_unet(folder)
    x, t = torch.randn(3, 1, 32, 32), torch.tensor([900, 900, 900])
    dh = torch.randn(2, *cfg.h_shape) * 0.5
    with torch.no_grad():
        plain = unet(x, t)
        with shift_h(unet, lambda h, emb: torch.cat([torch.zeros_like(h[:1]), dh])):
            shifted = unet(x, t)
        with asymmetric(unet, lambda h, emb: dh, first=1):
            both = unet(x, t)
    assert both.shape == (5, 1, 32, 32)
    assert torch.allclose(both[:3], plain, atol=1e-5) and torch.allclose(both[3:], shifted[1:], atol=1e-5)
    assert not torch.allclose(shifted[1:], plain[1:], atol=1e-4)


def test_chain_backprop_equals_vanilla_on_diffusers(folder, smoke):
    unet, cfg = load_unet(folder)
    unet.requires_grad_(False)
    torch.manual_seed(1)
    model = DiscoveryModel(cfg, smoke.discovery)
    perturb_zero_params(model.shift, std=0.05, seed=2)
    steps = ddim_steps(4, schedule_of(unet))
    eps_model = Shifted(unet, model.shift, torch.tensor([0, 3]), torch.tensor([2.0, -4.0]), 400)

    def step(x, i):
        return ddim_step(eps_model, x, steps, i, clip=False)

    z, target = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32)
    (run_chain(step, z, len(steps)) - target).square().sum().backward()
    vanilla = {n: p.grad.clone() for n, p in model.shift.named_parameters()}
    model.shift.zero_grad(set_to_none=True)
    nodes = record_chain(step, z, len(steps))
    x_c = nodes[-1].requires_grad_(True)
    (x_c - target).square().sum().backward()
    backprop_chain(step, nodes, x_c.grad)
    for name, p in model.shift.named_parameters():
        rel = (vanilla[name] - p.grad).abs().max() / vanilla[name].abs().max().clamp_min(1e-30)
        assert rel < 1e-4, name


def test_the_pipeline_runs_on_diffusers(folder, smoke, tmp_path):
    unet, cfg = load_unet(folder)
    d = dataclasses.replace(smoke.discovery, head_init_std=0.05)
    out = tmp_path / "directions"
    summary = train_discovery(unet, cfg, d, out, steps=2, progress=False)
    assert summary["steps"] == 2
    ex = explore(out / "directions.pt", dm=folder, real=torch.rand(1, 1, 32, 32) * 2 - 1, invert_steps=4)
    ex.strength.value = d.S
    left, right = ex.render()
    assert not torch.allclose(left, right)
    ex.source.value = "real image"  # DDIM inversion on the diffusers model
    assert 0 in ex._inverted
    x_T, recon = invert(unet, torch.rand(1, 1, 32, 32) * 2 - 1, ddim_steps(4, schedule_of(unet)))
    assert x_T.shape == recon.shape == (1, 1, 32, 32)
    dirs = DirectionSet.of(ex.dirs.shift, d, schedule_of(unet))
    assert dirs.sweep(unet, x_T, 1, torch.tensor([-5.0, 0.0, 5.0])).shape == (1, 3, 1, 32, 32)
