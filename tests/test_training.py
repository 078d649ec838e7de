import dataclasses

import pytest
import torch

from hdisc.backbone import load_unet
from hdisc.data import TensorImages
from hdisc.training import DM_CHECKPOINT, train_dm, warmup_lr


@pytest.fixture
def images():
    return TensorImages(torch.rand(16, 1, 32, 32) * 2 - 1)


def _weights(path):
    return torch.load(path / DM_CHECKPOINT, weights_only=True)


def test_two_seeded_runs_are_identical(tmp_path, smoke, images):
    a = train_dm(smoke.unet, smoke.dm, images, tmp_path / "a", seed=3, progress=False)
    b = train_dm(smoke.unet, smoke.dm, images, tmp_path / "b", seed=3, progress=False)
    c = train_dm(smoke.unet, smoke.dm, images, tmp_path / "c", seed=4, progress=False)
    assert a["loss_curve"] == b["loss_curve"] != c["loss_curve"]
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])
    assert a["steps"] == smoke.dm.steps


def test_resume_continues_the_same_run(tmp_path, smoke, images):
    cfg = dataclasses.replace(smoke.dm, steps=4, checkpoint_every=1)
    straight = train_dm(smoke.unet, cfg, images, tmp_path / "straight", seed=0, progress=False, log_every=1)

    class Killed(Exception):
        pass

    calls = {"n": 0}
    real_backward = torch.Tensor.backward

    def die_on_third_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed
        return real_backward(self, *args, **kwargs)

    torch.Tensor.backward = die_on_third_step
    try:
        with pytest.raises(Killed):
            train_dm(smoke.unet, cfg, images, tmp_path / "resumed", seed=0, progress=False, log_every=1)
    finally:
        torch.Tensor.backward = real_backward
    assert _weights(tmp_path / "resumed")["step"] == 2
    resumed = train_dm(smoke.unet, cfg, images, tmp_path / "resumed", seed=0, progress=False, log_every=1)
    assert resumed["loss_curve"] == straight["loss_curve"]
    ws, wr = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    for part in ("model", "ema"):
        assert all(torch.equal(ws[part][k], wr[part][k]) for k in ws[part])
    ema, _ = load_unet(tmp_path / "resumed" / "dm_ema.pt")
    assert torch.equal(ema.out[2].weight, wr["ema"]["out.2.weight"])


def test_asking_for_more_steps_extends_a_finished_run(tmp_path, smoke, images):
    train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=0, progress=False)
    more = train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=0, steps=smoke.dm.steps + 2, progress=False)
    assert more["steps"] == smoke.dm.steps + 2


def test_resuming_with_another_config_or_seed_refuses(tmp_path, smoke, images):
    train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=0, progress=False)
    with pytest.raises(ValueError, match="belongs to another run"):
        train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=1, progress=False)
    wider = dataclasses.replace(smoke.unet, model_channels=64)
    with pytest.raises(ValueError, match="choose a new out_dir"):
        train_dm(wider, smoke.dm, images, tmp_path, seed=0, progress=False)


def test_warmup_is_linear_then_flat():
    assert warmup_lr(1.0, 4, 0) == 0.25 and warmup_lr(1.0, 4, 3) == 1.0 and warmup_lr(1.0, 4, 100) == 1.0
