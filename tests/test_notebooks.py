"""Each experiment notebook runs end to end under papermill at the smoke preset."""

import json
from pathlib import Path

import papermill
import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def run(name: str, tmp_path: Path, **params) -> Path:
    out = tmp_path / "run"
    papermill.execute_notebook(EXPERIMENTS / f"{name}.ipynb", tmp_path / f"{name}.ipynb",
                               parameters={"preset": "smoke", "out_dir": str(out), **params},
                               progress_bar=False, kernel_name="python3")
    return out


def test_train_dm_mnist(tmp_path):
    out = run("train_dm", tmp_path, n_samples=8, n_eval=16)
    record = json.loads((out / "train_dm.json").read_text())
    assert record["dataset"] == "mnist32" and record["preset"] == "smoke" and record["steps"] == 4
    assert record["sampling"]["clip_x0"] is True and record["quality"]["n"] == 16
    assert (out / "samples.png").stat().st_size > 0


def test_train_dm_image_folder(tmp_path):
    from test_data import _write_images

    _write_images(tmp_path / "imgs", 4, size=(80, 70))
    out = run("train_dm", tmp_path, dataset="anime64", data_dir=str(tmp_path / "imgs"), n_samples=2)
    record = json.loads((out / "train_dm.json").read_text())
    assert record["config"]["unet"]["image_size"] == 64 and record["quality"] is None


def test_missing_data_dir_fails_with_its_message(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="pass data_dir"):
        run("train_dm", tmp_path, dataset="afhq128")
