"""Each experiment notebook runs end to end under papermill at the smoke preset."""

import json
from pathlib import Path

import papermill
import pytest

from hdisc.bench import SETTINGS, setting_of
from hdisc.chapter import defaults

pytestmark = pytest.mark.slow  # notebooks under papermill

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def run(name: str, tmp_path: Path, **params) -> Path:
    """Execute a chapter at the smoke preset, writing into ``tmp_path/run`` when it takes an out_dir."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "run"
    where = {"out_dir": str(out)} if "out_dir" in defaults(name) else {}
    papermill.execute_notebook(EXPERIMENTS / f"{name}.ipynb", tmp_path / f"{name}.ipynb",
                               parameters={"preset": "smoke", **where, **params},
                               progress_bar=False, kernel_name="python3")
    return out


def test_train_dm_mnist(tmp_path):
    out = run("train_dm", tmp_path, n_samples=8, n_eval=16)
    record = json.loads((out / "train_dm.json").read_text())
    assert record["dataset"] == "mnist32" and record["preset"] == "smoke" and record["steps"] == 4
    assert record["sampling"]["clip_x0"] is True and record["quality"]["n"] == 16
    assert (out / "samples.png").stat().st_size > 0


def test_train_dm_shapes32_reads_its_samples_with_the_factor_readers(tmp_path):
    out = run("train_dm", tmp_path, dataset="shapes32", n_samples=4, n_eval=8, precision="auto")
    record = json.loads((out / "train_dm.json").read_text())
    assert record["config"]["unet"]["in_channels"] == 3 and record["quality"]["n"] == 8
    assert set(record["quality"]["samples"]["factor_distance"]) == {"scale", "orientation", "x", "y", "hue",
                                                                    "background"}
    assert record["quality"]["real"]["fd_shapenet"] >= 0


def test_train_dm_image_folder(tmp_path):
    from test_data import _write_images

    _write_images(tmp_path / "imgs", 4, size=(80, 70))
    out = run("train_dm", tmp_path, dataset="anime64", data_dir=str(tmp_path / "imgs"), n_samples=2)
    record = json.loads((out / "train_dm.json").read_text())
    assert record["config"]["unet"]["image_size"] == 64 and record["quality"] is None


def test_missing_data_dir_fails_with_its_message(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="pass data_dir"):
        run("train_dm", tmp_path, dataset="afhq128")


def test_train_mnist_from_a_given_dm(tmp_path):
    dm = run("train_dm", tmp_path / "dm", n_samples=2, n_eval=0) / "dm_ema.pt"
    out = run("train", tmp_path, dm_checkpoint=str(dm), n_rca=4)
    record = json.loads((out / "train.json").read_text())
    for key in ("dataset", "preset", "K", "S", "M", "t_stop", "steps", "rca", "d_real", "d_fake", "wall_s"):
        assert key in record
    assert record["K"] == 4 and record["steps"] == 4 and record["rca_curve"][-1][0] == 4
    assert 0 <= record["rca"] <= 1 and record["departures_from_paper"]["K"] == {"ours": 4, "paper": 32}
    (out / "discovery_checkpoint.pt").unlink()  # a released folder: weights and record only
    again = json.loads((run("train", tmp_path, dm_checkpoint=str(dm), n_rca=4, train=False) / "train.json").read_text())
    assert {k: v for k, v in again.items() if k != "wall_s"} == {k: v for k, v in record.items() if k != "wall_s"}
    assert not (out / "discovery_checkpoint.pt").exists()
    other = run("train_dm", tmp_path / "other", n_samples=2, n_eval=0, seed=1) / "dm_ema.pt"
    with pytest.raises(papermill.PapermillExecutionError, match="trained on another DM"):
        run("train", tmp_path, dm_checkpoint=str(other), n_rca=4, train=False)


def test_train_afhq_pretrains_from_an_image_folder(tmp_path):
    from test_data import _write_images

    _write_images(tmp_path / "dogs", 3, size=(140, 128))
    out = run("train", tmp_path, dataset="afhq128", data_dir=str(tmp_path / "dogs"), n_rca=2, steps=1)
    record = json.loads((out / "train.json").read_text())
    assert record["dataset"] == "afhq128" and record["dm_checkpoint"].startswith(str(out))


def test_train_with_a_missing_dm_checkpoint_says_so(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="dm_checkpoint .* does not exist"):
        run("train", tmp_path, dm_checkpoint=str(tmp_path / "none.pt"))


def test_benchmark_writes_its_json(tmp_path):
    out = run("benchmark", tmp_path, Ms=[2, 3], batch=2, repeats=1)
    record = json.loads((out / "benchmark.json").read_text())
    assert {setting_of(r) + (r["M"],) for r in record["rows"]} == {s + (M,) for s in SETTINGS for M in (2, 3)}
    assert all(r["peak_mb"] > 0 and r["img_per_s"] > 0 for r in record["rows"])
    assert all(r["budget_mb"] > 0 for r in record["rows"] if r["method"] == "budget")
    assert record["grad_max_rel_diff"] == 0 and record["step_time_ratio"] > 0 and record["budget_all_vs_vanilla"] > 0


def test_truth_scores_every_family_and_renders_from_its_record(tmp_path):
    from hdisc.backbone import build_unet, perturb_zero_params, save_unet
    from hdisc.presets import get_preset

    p = get_preset("shapes32", "smoke")
    dm = tmp_path / "dm_ema.pt"
    save_unet(perturb_zero_params(build_unet(p.unet), 0.05, 0), p.unet, dm)  # an untrained DM that answers
    out = run("truth", tmp_path / "a", dm_checkpoint=str(dm), n=3, n_pca=12)
    record = json.loads((out / "truth.json").read_text())
    assert [r["method"] for r in record["rows"]] == ["PCA (pooled)", "Jacobian (one image)",
                                                   "supervised (read factors)", "random (floor)", "random (scored)"]
    assert all(0 <= r["disentanglement"] <= 1 and len(r["importance"]) == len(r["names"]) for r in record["rows"])
    assert len(record["rows"][0]["names"]) == record["K"]
    again = run("truth", tmp_path / "b", dm_checkpoint=str(dm), from_record=str(out / "truth.json"))
    assert json.loads((again / "truth.json").read_text())["rows"] == record["rows"]
    with pytest.raises(papermill.PapermillExecutionError, match="run it with dataset='shapes32'"):
        run("truth", tmp_path / "c", dataset="mnist32")


def test_train_dm_renders_a_released_folder_without_its_checkpoint(tmp_path):
    out = run("train_dm", tmp_path / "a", dataset="shapes32", n_samples=4, n_eval=0)
    first = json.loads((out / "train_dm.json").read_text())
    (out / "dm_checkpoint.pt").unlink()  # a released folder: weights and record only
    again = run("train_dm", tmp_path / "a", dataset="shapes32", n_samples=4, n_eval=0, train=False)
    second = json.loads((again / "train_dm.json").read_text())
    assert second["loss_curve"] == first["loss_curve"] and second["steps"] == first["steps"]
    assert not (out / "dm_checkpoint.pt").exists()
    with pytest.raises(papermill.PapermillExecutionError, match="nothing to render in"):
        run("train_dm", tmp_path / "empty", dataset="shapes32", train=False)
