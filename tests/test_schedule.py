"""The noise schedule travels with the model: stored, read back, and used by every chain."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from guided_diffusion.gaussian_diffusion import get_named_beta_schedule

from hdisc.backbone import build_unet, load_dm, perturb_zero_params, save_unet
from hdisc.data import TensorImages
from hdisc.direction_set import DirectionSet
from hdisc.dm import DM
from hdisc.sampling import sample_ddim
from hdisc.schedule import DEFAULT, Schedule, ddim_steps
from hdisc.training import train_dm


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_betas_are_guided_diffusions(kind):
    ours = Schedule(T=1000, kind=kind).betas().numpy()
    assert np.allclose(ours, get_named_beta_schedule(kind, 1000), rtol=1e-12, atol=0)


def test_scaled_linear_is_linear_in_the_square_root():
    betas = Schedule(T=10, kind="scaled_linear", beta_start=0.01, beta_end=0.04).betas()
    assert torch.allclose(betas.sqrt(), torch.linspace(0.1, 0.2, 10, dtype=torch.float64))


def test_diffusers_scheduler_configs_map_to_schedules():
    cfg = {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "beta_start": 0.0001,
           "beta_end": 0.02, "prediction_type": "epsilon"}
    assert Schedule.from_diffusers(cfg) == Schedule(1000, "cosine", 1e-4, 0.02)
    assert Schedule.from_diffusers({"beta_schedule": "linear"}) == DEFAULT
    v = Schedule.from_diffusers({**cfg, "prediction_type": "v_prediction"})
    assert v == Schedule(1000, "cosine", 1e-4, 0.02, "v") and v.to_dict()["prediction"] == "v"
    assert "prediction" not in DEFAULT.to_dict() and Schedule.from_dict(v.to_dict()) == v  # old files read the same
    with pytest.raises(ValueError, match="prediction_type='sample' is not supported"):
        Schedule.from_diffusers({**cfg, "prediction_type": "sample"})
    with pytest.raises(ValueError, match="beta_schedule='sigmoid' is not supported"):
        Schedule.from_diffusers({"beta_schedule": "sigmoid"})


@pytest.mark.parametrize("bad, match", [({"kind": "quadratic"}, "kind='quadratic' is not known"),
                                        ({"T": 1}, "T=1 is out of range"),
                                        ({"beta_start": 0.03}, "0 < beta_start < beta_end < 1"),
                                        ({"prediction": "x0"}, r"prediction='x0' is not known: valid \('eps', 'v'\)")])
def test_bad_schedules_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        Schedule(**bad)


def test_a_cosine_model_samples_with_its_own_schedule(tmp_path, smoke):
    torch.manual_seed(0)
    unet = perturb_zero_params(build_unet(smoke.unet), std=0.05).eval()
    cosine = Schedule(kind="cosine")
    save_unet(unet, smoke.unet, tmp_path / "cos.pt", cosine)
    loaded = load_dm(tmp_path / "cos.pt")
    assert loaded.schedule == cosine
    steps = DirectionSet.of(lambda h, emb, t, k: torch.zeros_like(h), smoke.discovery, loaded).steps
    t = steps.t.tolist()
    assert steps.abar.tolist() == [cosine.alphas_cumprod()[i].item() for i in t]
    assert not torch.allclose(steps.abar, ddim_steps(len(t)).abar)  # not the linear default's
    z = torch.randn(2, 1, 32, 32)
    on_cosine = sample_ddim(loaded, z, steps, disable=True)
    assert not torch.allclose(on_cosine, sample_ddim(loaded, z, ddim_steps(len(t)), disable=True), atol=1e-3)
    with pytest.raises(ValueError, match="trained with the noise schedule.*leave schedule unset"):
        load_dm(tmp_path / "cos.pt", schedule=DEFAULT)


def test_files_without_a_schedule(tmp_path, smoke):
    unet = build_unet(smoke.unet)
    blob = {"config": dataclasses.asdict(smoke.unet), "state_dict": unet.state_dict()}
    torch.save(blob, tmp_path / "old.pt")  # hdisc before schedules were stored: always the default
    assert load_dm(tmp_path / "old.pt").schedule == DEFAULT
    torch.save(unet.state_dict(), tmp_path / "openai.pt")  # a bare state dict: unknown, said so
    with pytest.warns(UserWarning, match="does not say which noise schedule"):
        assert load_dm(tmp_path / "openai.pt", smoke.unet).schedule == DEFAULT
    cosine = Schedule(kind="cosine")
    assert load_dm(tmp_path / "openai.pt", smoke.unet, schedule=cosine).schedule == cosine


def test_dm_training_uses_and_stores_its_schedule(tmp_path, smoke):
    images = TensorImages(torch.rand(8, 1, 32, 32) * 2 - 1)
    cosine = dataclasses.replace(smoke.dm, schedule=Schedule(kind="cosine"))
    train_dm(smoke.unet, cosine, images, tmp_path, seed=0, steps=1, progress=False)
    assert load_dm(tmp_path / "dm_ema.pt").schedule == cosine.schedule
    with pytest.raises(ValueError, match="belongs to another run.*schedule"):
        train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=0, steps=2, progress=False)


def test_cosine_abar_follows_its_formula():
    abar = Schedule(T=1000, kind="cosine").alphas_cumprod()
    f = [math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2 for u in (0.0, 0.5)]
    assert abar[499].item() == pytest.approx(f[1] / f[0], rel=1e-6)


def test_a_v_predicting_network_gives_the_samplers_noise_in_every_pass(smoke):
    from hdisc.backbone import asymmetric

    torch.manual_seed(0)
    net = perturb_zero_params(build_unet(smoke.unet), std=0.05).eval()
    x, t = torch.randn(3, 1, 32, 32), torch.tensor([999, 500, 10])
    v_sched = Schedule(kind="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction="v")
    abar = v_sched.alphas_cumprod().float()[t].view(-1, 1, 1, 1)

    def delta(h, emb):
        return torch.ones_like(h)

    dm = DM(net, smoke.unet, v_sched)
    with torch.no_grad():
        v = net(x, t)
        with asymmetric(net, delta, first=1):
            v_both = net(x, t)
        eps = dm(x, t)
        with asymmetric(dm, delta, first=1):
            eps_both = dm(x, t)
    assert torch.allclose(eps, abar.sqrt() * v + (1 - abar).sqrt() * x, atol=1e-6)
    rows = torch.cat([abar, abar[1:]])
    assert torch.allclose(eps_both, rows.sqrt() * v_both + (1 - rows).sqrt() * torch.cat([x, x[1:]]), atol=1e-6)
    with torch.no_grad():  # an eps DM passes the network's output through
        assert torch.equal(DM(net, smoke.unet)(x, t), v)


def test_a_v_dm_trains_on_v_and_loads_predicting_noise(tmp_path, smoke):
    from hdisc.training import dm_loss

    images = TensorImages(torch.rand(8, 1, 32, 32) * 2 - 1)
    v_cfg = dataclasses.replace(smoke.dm, schedule=Schedule(kind="scaled_linear", beta_start=0.00085,
                                                            beta_end=0.012, prediction="v"))
    train_dm(smoke.unet, v_cfg, images, tmp_path, seed=0, steps=1, progress=False)
    unet = load_dm(tmp_path / "dm_ema.pt")
    assert unet.schedule == v_cfg.schedule  # the DM samples it as noise
    bare = build_unet(smoke.unet).eval()
    x0 = images.images[:4]
    gen = torch.Generator().manual_seed(0)
    t = torch.randint(1000, (4,), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    abar = v_cfg.schedule.alphas_cumprod()[t].float().view(-1, 1, 1, 1)
    want = torch.nn.functional.mse_loss(bare(abar.sqrt() * x0 + (1 - abar).sqrt() * noise, t),
                                        abar.sqrt() * noise - (1 - abar).sqrt() * x0)
    assert torch.allclose(dm_loss(bare, x0, v_cfg.schedule, torch.Generator().manual_seed(0)), want)
    x = sample_ddim(unet, torch.randn(2, 1, 32, 32), unet.steps(4), disable=True)
    assert x.shape == (2, 1, 32, 32) and torch.isfinite(x).all()
