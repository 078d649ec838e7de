import hashlib
import json
from pathlib import Path

import torch

from hdisc.files import project_path, shown_path, write_json
from hdisc.runs import write_record


def test_shown_path_is_relative_inside_the_project():
    assert shown_path(project_path("models/mnist32-cpu/dm_ema.pt")) == "models/mnist32-cpu/dm_ema.pt"


def test_shown_path_stays_absolute_outside_the_project(tmp_path):
    assert Path(shown_path(tmp_path / "x.pt")).is_absolute()


def test_records_name_their_model_files_and_environment(tmp_path):
    model = tmp_path / "dm_ema.pt"
    model.write_bytes(b"weights")
    write_record(tmp_path / "r.json", {"x": 1}, {"dm": model, "directions": None})
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["x"] == 1 and record["models"]["directions"] is None
    assert record["models"]["dm"] == {"path": str(model), "sha256": hashlib.sha256(b"weights").hexdigest()}
    assert record["environment"]["torch"] == torch.__version__
    (tmp_path / "ddpm").mkdir()  # a diffusers folder: hashed file by file
    (tmp_path / "ddpm" / "config.json").write_text("{}")
    write_record(tmp_path / "r.json", {}, {"dm": tmp_path / "ddpm"})
    assert len(json.loads((tmp_path / "r.json").read_text())["models"]["dm"]["sha256"]) == 64
    write_record(tmp_path / "r.json", {"environment": {"measured": "elsewhere"}}, {})
    assert json.loads((tmp_path / "r.json").read_text())["environment"] == {"measured": "elsewhere"}


def test_records_are_the_same_bytes_when_floats_differ_in_their_last_bits(tmp_path):
    a, b = 0.1 + 0.2, 0.3  # 0.30000000000000004 and 0.3
    write_json(tmp_path / "a.json", {"v": a, "rows": [{"w": 1 / 3}], "t": (a, 2)})
    write_json(tmp_path / "b.json", {"v": b, "rows": [{"w": 0.33333333333}], "t": (b, 2)})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": 0.3, "rows": [{"w": 0.333333}], "t": [0.3, 2]}


def test_a_full_disk_is_named_and_the_old_file_stays(tmp_path):
    import errno

    import pytest

    from hdisc.files import atomic_write

    target = tmp_path / "record.json"
    target.write_text("old")

    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="no space left on the device writing .*record.json: free some space"):
        atomic_write(target, full)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["record.json"]
