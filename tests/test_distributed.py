"""Past one machine: DM pretraining and discovery training under torchrun train the weights one process does."""

import os
import subprocess
import sys

import pytest
import torch

from hdisc.data import TensorImages
from hdisc.presets import get_preset
from hdisc.training import DISCOVERY_CHECKPOINT, DM_CHECKPOINT, train_discovery, train_dm

pytestmark = pytest.mark.slow  # torchrun processes

TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _run(args, out, command=("hdisc.pretrain",), checkpoint=DM_CHECKPOINT, steps=3):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["-m", *command, "--dataset", "mnist32", "--preset", "smoke", "--steps", str(steps), "--out", str(out)]
    subprocess.run([sys.executable, *args, *common], check=True, env=env, capture_output=True, timeout=600)
    return torch.load(out / checkpoint, weights_only=True)


def test_two_processes_train_the_weights_of_one(tmp_path):
    one = _run([], tmp_path / "one")
    two = _run(TORCHRUN, tmp_path / "two")
    assert one["step"] == two["step"] == 3
    # Adam divides each gradient by its running size, so a parameter whose gradient is near zero
    # (the zero-initialised output convolutions) can move by rounding alone; bounded far below
    # one step's size (lr 1e-3): measured 2.4e-5 at most over 3 steps
    for part in ("model", "ema"):
        for name, w in one[part].items():
            torch.testing.assert_close(two[part][name], w, rtol=1e-4, atol=1e-4, msg=f"{part}.{name}")
    assert [e["loss"] for e in two["log"]] == pytest.approx([e["loss"] for e in one["log"]], rel=1e-4)


def test_a_batch_that_does_not_split_is_refused(tmp_path, monkeypatch):
    smoke = get_preset("mnist32", "smoke")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setattr("hdisc.training.distributed", lambda device: (0, 3, torch.device("cpu")))
    with pytest.raises(ValueError, match=r"batch=2 does not split over 3 processes"):
        train_dm(smoke.unet, smoke.dm, TensorImages(torch.zeros(4, 1, 32, 32)), tmp_path, steps=1, progress=False)


def _discover(tmp_path, trained, precision):
    command = ("hdisc.discover", "--dm", trained["dm_checkpoint"], "--init-from", trained["directions"],
               "--precision", precision)
    one = _run([], tmp_path / "one", command, DISCOVERY_CHECKPOINT, steps=1)
    two = _run(TORCHRUN, tmp_path / "two", command, DISCOVERY_CHECKPOINT, steps=1)
    assert one["step"] == two["step"] == 1
    return one, two


def _moments_agree(one, two, opt, within):
    """Adam's first moments (0.1 g after one step) agree within ``within`` x the optimiser's largest."""
    moments = {i: s["exp_avg"] for i, s in one[opt]["state"].items()}
    scale = max(m.abs().max().item() for m in moments.values())
    for i, m in moments.items():
        torch.testing.assert_close(two[opt]["state"][i]["exp_avg"], m, rtol=within, atol=within * scale,
                                   msg=f"{opt} parameter {i}")


def test_two_processes_discover_the_directions_of_one(tmp_path, trained):
    """Chain backprop, the reconstructor's BatchNorm over the whole batch and both optimisers,
    on one step from the same weights (after that, Adam turns rounding-level gradients into
    full steps: the conv biases before BatchNorm, which it cancels, have |g| ~ 1e-8)."""
    one, two = _discover(tmp_path, trained, "float32")
    # measured: 2e-6 shift block and reconstructor, 1.6e-5 discriminator; per-rank BatchNorm: 0.81
    for opt in ("opt_g", "opt_d"):
        _moments_agree(one, two, opt, 1e-4)
    # BatchNorm's running statistics come from the whole batch on every rank
    for name, w in one["model"].items():
        if "running_" in name:
            torch.testing.assert_close(two["model"][name], w, rtol=1e-5, atol=1e-6, msg=name)
    for key in ("l_ce", "l_mag", "l_d", "acc"):
        assert two["log"][-1][key] == pytest.approx(one["log"][-1][key], rel=1e-5, abs=1e-7)


def test_two_processes_discover_in_bfloat16(tmp_path, trained):
    """Under bfloat16 autocast (precision=auto's choice on a CPU with AMX) the whole-batch
    BatchNorm gets bfloat16 activations and keeps its float32 statistics. Convolutions over 8
    rows and over 16 round differently in bfloat16, so the gradients agree to rounding only:
    measured 0.5% of the largest for the shift block and reconstructor; the discriminator's
    (|g| ~ 1e-3 at this step) is rounding-sized and is not compared."""
    one, two = _discover(tmp_path, trained, "bfloat16")
    _moments_agree(one, two, "opt_g", 2e-2)
    for name, w in one["model"].items():
        if "running_" in name:
            assert two["model"][name].dtype == torch.float32, name
            torch.testing.assert_close(two["model"][name], w, rtol=1e-2, atol=1e-3, msg=name)
    for key in ("l_ce", "l_mag", "l_d", "acc"):
        assert two["log"][-1][key] == pytest.approx(one["log"][-1][key], rel=1e-3, abs=1e-6)


def test_a_discovery_batch_that_does_not_split_is_refused(tmp_path, monkeypatch, unet):
    smoke = get_preset("mnist32", "smoke")
    monkeypatch.setattr("hdisc.training.distributed", lambda device: (0, 3, torch.device("cpu")))
    with pytest.raises(ValueError, match=r"DiscoveryConfig batch=2 does not split over 3 processes"):
        train_discovery(unet, smoke.discovery, tmp_path, steps=1, progress=False)
