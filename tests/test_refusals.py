"""What hdisc refuses, and that a refusal or a numeric fault never costs a good file.

Each case goes through the public API (the NaN one also through papermill) and checks the
named error, and where files exist, that not one byte of them changed.
"""

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

import papermill
import pytest
import torch

from hdisc import discover
from hdisc.backbone import build_unet, load_dm, save_unet
from hdisc.data import ImageFolder, TensorImages, random_batch
from hdisc.dm import DM
from hdisc.guard import NonFiniteError
from hdisc.presets import DATASETS, MAX_H_SIDE, SCALES, DiscoveryConfig, DMTrainConfig, UNetConfig, get_preset, override
from hdisc.runs import open_trained
from hdisc.sampling import generate
from hdisc.schedule import ddim_steps
from hdisc.training import (
    DISCOVERY_CHECKPOINT,
    DISCOVERY_WEIGHTS,
    DM_CHECKPOINT,
    DM_WEIGHTS,
    load_directions,
    train_discovery,
    train_dm,
)

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.pt"))}


@pytest.fixture
def images():
    return TensorImages(torch.rand(16, 1, 32, 32) * 2 - 1)


def test_a_nan_batch_stops_dm_training_and_keeps_the_last_checkpoint(tmp_path, smoke, images):
    train_dm(smoke.unet, smoke.dm, images, tmp_path, steps=2, progress=False)
    before = _digests(tmp_path)
    assert set(before) == {DM_CHECKPOINT, DM_WEIGHTS}
    nan = TensorImages(torch.full((16, 1, 32, 32), float("nan")))
    with pytest.raises(NonFiniteError, match=r"DM step 2: non-finite noise-prediction loss.*step 2\) is untouched"):
        train_dm(smoke.unet, smoke.dm, nan, tmp_path, steps=4, progress=False)
    assert _digests(tmp_path) == before


def test_a_nan_dm_stops_discovery_and_keeps_every_file(tmp_path, smoke, unet):
    cfg = dataclasses.replace(smoke.discovery, head_init_std=0.05)
    train_discovery(unet, cfg, tmp_path, steps=2, progress=False)
    before = _digests(tmp_path)
    assert set(before) == {DISCOVERY_CHECKPOINT, DISCOVERY_WEIGHTS}
    broken = DM(build_unet(smoke.unet), smoke.unet)
    broken.net.load_state_dict({k: torch.full_like(v, float("nan")) for k, v in unet.net.state_dict().items()})
    # the run knows its DM: weights that turned NaN are another DM, refused before any step
    with pytest.raises(ValueError, match="belongs to another run.*'dm'"):
        train_discovery(broken, cfg, tmp_path, steps=4, progress=False)
    assert _digests(tmp_path) == before
    # a DM whose weights are fine but whose output overflows mid-run stops at the step, files kept
    with torch.no_grad():
        scale = torch.nn.Parameter(torch.ones(()))
    unet.register_forward_hook(lambda m, i, out: out * scale)
    train_discovery(unet, cfg, tmp_path, steps=3, progress=False)
    before = _digests(tmp_path)
    with torch.no_grad():
        scale.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="discovery step 3: non-finite .*NaN or infinite weights in the DM"):
        train_discovery(unet, cfg, tmp_path, steps=4, progress=False)
    assert _digests(tmp_path) == before


def test_a_fresh_run_with_a_nan_dm_writes_nothing(tmp_path, smoke, unet):
    broken = DM(build_unet(smoke.unet), smoke.unet)
    broken.net.load_state_dict({k: torch.full_like(v, float("nan")) for k, v in unet.net.state_dict().items()})
    with pytest.raises(NonFiniteError, match="step 0: .*no checkpoint was written"):
        train_discovery(broken, smoke.discovery, tmp_path, steps=2, progress=False)
    assert not list(tmp_path.glob("*.pt"))


@pytest.mark.slow  # papermill
def test_a_nan_dm_stops_the_training_notebook(tmp_path, smoke, unet):
    broken = build_unet(smoke.unet)
    broken.load_state_dict({k: torch.full_like(v, float("nan")) for k, v in unet.net.state_dict().items()})
    save_unet(broken, smoke.unet, tmp_path / "nan_dm.pt")
    with pytest.raises(papermill.PapermillExecutionError, match="NonFiniteError"):
        papermill.execute_notebook(EXPERIMENTS / "train.ipynb", tmp_path / "train.ipynb", progress_bar=False,
                                   parameters={"preset": "smoke", "out_dir": str(tmp_path / "run"),
                                               "dm_checkpoint": str(tmp_path / "nan_dm.pt")},
                                   kernel_name="python3")
    assert not list((tmp_path / "run").glob("*.pt"))


@pytest.mark.parametrize(("field", "value", "named"), [
    ("t_stop", 1.5, r"t_stop=1.5 is out of range: valid a whole number in \[0, "),
    ("t_stop", -1, r"t_stop=-1 is out of range"),
    ("K", 0, r"K=0 is out of range: valid a whole number in \[1, 4096\]"),
    ("K", 1.9, r"K=1.9 is out of range: valid a whole number"),
    ("K", 10**6, r"K=1000000 is out of range"),
    ("batch", 10**9, r"batch=1000000000 is out of range: .*split a larger batch over processes"),
    ("batch", 0, r"batch=0 is out of range"),
    ("steps", 0, r"steps=0 is out of range"),
    ("checkpoint_every", 0, r"checkpoint_every=0 is out of range"),
    ("lambda_mag", float("nan"), r"lambda_mag=nan is out of range"),
    ("S", -1.0, r"S=-1.0 is out of range: valid \(0, 100\]"),
    ("S", float("inf"), r"S=inf is out of range"),
    ("S", 7e8, r"S=700000000.0 is out of range"),
    ("M", 0, r"M=0 is out of range"),
    ("lambda_div", -1.0, r"lambda_div=-1.0 is out of range"),
    ("div_images", 0, r"div_images=0 is out of range"),
])
def test_discovery_settings_out_of_range_are_refused(smoke, field, value, named):
    with pytest.raises(ValueError, match=f"DiscoveryConfig.{named}"):
        dataclasses.replace(smoke.discovery, **{field: value})


def test_a_chain_beyond_the_dms_own_schedule_is_refused_before_any_file(tmp_path, smoke, unet):
    from hdisc.dm import DM
    from hdisc.schedule import Schedule

    short = DM(unet.net, unet.config, Schedule(T=100))  # a DM trained with 100 timesteps; the preset's t_stop is 400
    with pytest.raises(ValueError, match=r"t_stop=400 shifts none of the M=4 steps of this DM's schedule \(T=100"):
        train_discovery(short, smoke.discovery, tmp_path / "run", steps=1, progress=False)
    with pytest.raises(ValueError, match=r"M=200 .* T=100"):
        train_discovery(short, dataclasses.replace(smoke.discovery, M=200, t_stop=40), tmp_path / "run", steps=1,
                        progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("penalty", ["lambda_orth", "lambda_div"])
def test_one_direction_with_an_overlap_penalty_is_refused(smoke, penalty):
    with pytest.raises(ValueError, match=f"{penalty}=1.0 .* needs K >= 2 .*set {penalty}=0"):
        dataclasses.replace(smoke.discovery, K=1, **{penalty: 1.0})
    assert dataclasses.replace(smoke.discovery, K=1).K == 1  # without the penalty one direction is fine


@pytest.mark.parametrize(("field", "value"), [("batch", 0), ("steps", -3), ("checkpoint_every", 0),
                                              ("lr", 0.0), ("ema", 1.0)])
def test_dm_settings_out_of_range_are_refused(smoke, field, value):
    with pytest.raises(ValueError, match=f"DMTrainConfig.{field}={value!r} is out of range"):
        dataclasses.replace(smoke.dm, **{field: value})


@pytest.mark.parametrize("steps", [0, -5, 2.5])
def test_step_counts_that_mean_nothing_are_refused_before_any_file(tmp_path, smoke, unet, images, steps):
    with pytest.raises(ValueError, match="steps=.* is out of range: valid None"):
        train_dm(smoke.unet, smoke.dm, images, tmp_path, steps=steps, progress=False)
    with pytest.raises(ValueError, match="steps=.* is out of range: valid None"):
        train_discovery(unet, smoke.discovery, tmp_path, steps=steps, progress=False)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow  # papermill
def test_a_negative_step_count_fails_the_notebook_rather_than_running_the_preset(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="steps=-5 is out of range"):
        papermill.execute_notebook(EXPERIMENTS / "train_dm.ipynb", tmp_path / "dm.ipynb", progress_bar=False,
                                   parameters={"preset": "smoke", "out_dir": str(tmp_path / "run"), "steps": -5},
                                   kernel_name="python3")
    assert not list((tmp_path / "run").glob("*.pt"))


def test_an_empty_dataset_is_refused(tmp_path, smoke):
    empty = TensorImages(torch.zeros(0, 1, 32, 32))
    with pytest.raises(ValueError, match="dataset is empty"):
        train_dm(smoke.unet, smoke.dm, empty, tmp_path, progress=False)
    with pytest.raises(ValueError, match="dataset is empty"):
        random_batch(empty, 2, torch.Generator())


@pytest.mark.parametrize(("kw", "named"), [({"n": 0}, "n=0"), ({"batch": 0}, "batch=0"), ({"n": -1}, "n=-1")])
def test_generate_refuses_empty_requests(unet, kw, named):
    with pytest.raises(ValueError, match=f"generate: {named} is out of range"):
        generate(unet, **{"n": 2, "shape": (1, 32, 32), "steps": ddim_steps(2), **kw})


def test_files_that_are_not_checkpoints_are_refused_without_unsafe_advice(tmp_path, smoke):
    torch.save([1, 2, 3], tmp_path / "list.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"model": {}, "code": _CodeCarrier()}, tmp_path / "code.pt")
    for name in ("list.pt", "text.pt", "code.pt"):
        for load in (lambda p: load_dm(p, smoke.unet), load_directions):
            with pytest.raises(ValueError, match=f"{name} is not a") as err:
                load(tmp_path / name)
            assert "weights_only" not in str(err.value).replace("weights_only=True", "")  # no advice to unpickle
            assert name != "code.pt" or "it holds code (test_refusals._CodeCarrier)" in str(err.value)


class _CodeCarrier:
    """An object a pickle can only rebuild by running code."""


def test_directions_of_another_k_are_refused_unless_asked_for(tmp_path, trained, smoke):
    unet = load_dm(trained["dm_checkpoint"])
    train_discovery(unet, dataclasses.replace(smoke.discovery, K=8), tmp_path, steps=1, progress=False)
    paths = (str(tmp_path / DISCOVERY_WEIGHTS), trained["dm_checkpoint"])
    with pytest.raises(ValueError, match=r"other settings than the mnist32-smoke preset: \{'K': \{'file': 8, "
                                         r"'preset': 4\}\}.*settings='file'"):
        open_trained("mnist32", "smoke", *paths)
    d = open_trained("mnist32", "smoke", *paths, settings="file")[3]
    assert d.K == 8 != smoke.discovery.K


def test_directions_of_the_preset_open_as_they_are(trained, smoke):
    cfg = dataclasses.replace(smoke.discovery, head_init_std=0.05)
    assert open_trained("mnist32", "smoke", trained["directions"], trained["dm_checkpoint"])[3] == cfg


def test_a_greyscale_folder_for_an_rgb_preset_warns_once_with_the_count(tmp_path):
    from PIL import Image

    tmp_path.mkdir(exist_ok=True)
    for i in range(3):
        Image.new("L" if i else "RGB", (8, 8)).save(tmp_path / f"{i}.png")
    with pytest.warns(UserWarning, match="2 of the 3 images .* are greyscale") as caught:
        ImageFolder(tmp_path, 8, channels=3)
    assert len(caught) == 1


def test_every_presets_middle_block_fits_and_sampling_splits_batches():
    for dataset in DATASETS:
        for scale in SCALES:
            unet = get_preset(dataset, scale).unet
            assert unet.h_shape[1] <= MAX_H_SIDE, (dataset, scale)
            side = unet.h_shape[1]
            # the attention matrices of one sampling batch stay within the 1 GiB budget
            assert unet.sample_batch() * unet.num_heads * side ** 4 * 4 <= 2 ** 30
    with pytest.raises(ValueError, match="sits at 64x64.*at most 16; add levels"):
        UNetConfig(128, 3, 32, (1, 2), 1)


def test_generate_splits_into_batches_that_give_the_same_images(unet):
    steps = ddim_steps(2)
    whole = generate(unet, 4, (1, 32, 32), steps, batch=4, disable=True)
    split = generate(unet, 4, (1, 32, 32), steps, batch=1, disable=True)
    assert whole.shape == split.shape == (4, 1, 32, 32)
    assert (whole - split).abs().mean() < 1e-3  # rows agree up to float32 rounding (oneDNN rounds by batch place)


def test_the_paper_mnist_dm_has_the_papers_size():
    unet = build_unet(get_preset("mnist32", "paper").unet)
    assert sum(p.numel() for p in unet.parameters()) == 16_884_097  # 16.9M, the paper's table 3


def test_a_resumed_dm_run_logs_what_an_uninterrupted_one_does(tmp_path, smoke, images):
    cfg = dataclasses.replace(smoke.dm, steps=6, checkpoint_every=6)
    straight = train_dm(smoke.unet, cfg, images, tmp_path / "a", progress=False, log_every=4)
    train_dm(smoke.unet, cfg, images, tmp_path / "b", steps=3, progress=False, log_every=4)  # stops mid-window
    resumed = train_dm(smoke.unet, cfg, images, tmp_path / "b", progress=False, log_every=4)
    assert resumed["loss_curve"] == straight["loss_curve"] and resumed["final_loss"] == straight["final_loss"]


def test_a_resume_with_another_thread_count_warns(tmp_path, smoke, images):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        train_dm(smoke.unet, smoke.dm, images, tmp_path, steps=2, progress=False)
        assert torch.load(tmp_path / DM_CHECKPOINT, weights_only=True)["threads"] == 1
        torch.set_num_threads(2)
        with pytest.warns(UserWarning, match="written with 1 threads and resumes with 2"):
            train_dm(smoke.unet, smoke.dm, images, tmp_path, steps=3, progress=False)
        torch.set_num_threads(1)
        with warnings.catch_warnings():  # a finished run only renders: nothing to warn about (the book's train pages)
            warnings.simplefilter("error")
            train_dm(smoke.unet, smoke.dm, images, tmp_path, steps=3, progress=False)
    finally:
        torch.set_num_threads(threads)


def test_configs_are_plain_settings():
    assert DMTrainConfig(lr=1e-3, batch=1, steps=1, ema=0.0).batch == 1
    assert DiscoveryConfig(K=1, S=1, M=1, t_stop=0, batch=1, steps=1).clip is True
    assert json.dumps(dataclasses.asdict(get_preset("mnist32", "cpu")))


def test_overrides_read_each_field_as_its_declared_type():
    cfg = get_preset("mnist32", "cpu").discovery  # S is written 5 in the preset; the field is a float
    assert override(cfg, ["S=2.5"]).S == 2.5 and override(cfg, ["batch=1e2"]).batch == 100
    for item in ("K=1.9", "M=3.99", "batch=2.5"):
        with pytest.raises(ValueError, match=f"cannot read '{item.split('=')[1]}' as int \\(a whole number\\)"):
            override(cfg, [item])


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "abc", True])
def test_a_seed_out_of_range_is_refused_before_any_file(tmp_path, smoke, unet, images, seed):
    with pytest.raises(ValueError, match=r"seed=.* is out of range: valid an int in \[0, 2\*\*63\)"):
        train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=seed, progress=False)
    with pytest.raises(ValueError, match=r"seed=.* is out of range"):
        train_discovery(unet, smoke.discovery, tmp_path, seed=seed, progress=False)
    assert not list(tmp_path.iterdir())


def test_devices_that_are_not_here_are_refused_by_name():
    from hdisc.runs import resolve_device

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cases = [("gpu0", "is not a device"), (f"cuda:{n}", "is not available here"), ("meta", "is not available here")]
    cases += [("cuda", "is not available here")] if n == 0 else []
    for device, named in cases:
        with pytest.raises(ValueError, match=f"device='{device}' {named}: valid auto, cpu"):
            resolve_device(device)
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.parametrize("n", [0, -5, 2.5])
def test_rca_on_no_pairs_is_refused(smoke, unet, discovery, n):
    from hdisc.discovery import reconstructor_accuracy

    with pytest.raises(ValueError, match=r"n=.* pairs and batch=2 must be ints >= 1.*nothing was scored"):
        reconstructor_accuracy(unet, discovery, smoke.discovery, ddim_steps(2), n, 2, torch.Generator())


def test_overrides_read_each_field_as_its_type_and_refuse_what_they_cannot_read():
    cfg = get_preset("mnist32", "cpu").discovery
    new = override(cfg, ["M=5", "batch=16", "shift_norm=free", "shift_rms=0", "clip=false", "lr=2e-3"])
    assert (new.M, new.batch, new.shift_norm, new.shift_rms, new.clip, new.lr) == (5, 16, "free", 0.0, False, 2e-3)
    with pytest.raises(ValueError, match="cannot set 'bacth=16'; write FIELD=VALUE with FIELD one of K, S, M"):
        override(cfg, ["bacth=16"])
    with pytest.raises(ValueError, match=r"DiscoveryConfig.clip: cannot read 'yes' as bool"):
        override(cfg, ["clip=yes"])
    with pytest.raises(ValueError, match="DiscoveryConfig.M: cannot read 'ten' as int"):
        override(cfg, ["M=ten"])
    with pytest.raises(ValueError, match="M="):  # the config's own range check
        override(cfg, ["M=0"])


def test_discover_refuses_an_unknown_setting_before_it_loads_anything(capsys, tmp_path):
    with pytest.raises(SystemExit):
        discover.main(["--dataset", "mnist32", "--preset", "smoke", "--dm", str(tmp_path / "missing.pt"),
                       "--out", str(tmp_path), "--set", "bacth=2"])
    assert "cannot set 'bacth=2'; write FIELD=VALUE" in capsys.readouterr().err


def test_the_command_lines_name_a_bad_device_and_take_out_relative_to_the_working_directory(capsys, tmp_path,
                                                                                             monkeypatch):
    from hdisc import pretrain

    with pytest.raises(SystemExit):
        pretrain.main(["--dataset", "shapes32", "--preset", "smoke", "--device", "gpu0", "--out", str(tmp_path)])
    assert "device='gpu0' is not a device: valid auto, cpu" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    summary = pretrain.main(["--dataset", "shapes32", "--preset", "smoke", "--out", "here", "--steps", "1"])
    assert (tmp_path / "here" / DM_WEIGHTS).is_file() and summary["steps"] == 1
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(NotADirectoryError, match="out_dir .*a-file is a file: pass a folder"):
        pretrain.main(["--dataset", "shapes32", "--preset", "smoke", "--out", "a-file", "--steps", "1"])
