from pathlib import Path

from hdisc.files import project_path, shown_path


def test_shown_path_is_relative_inside_the_project():
    assert shown_path(project_path("models/mnist32-cpu/dm_ema.pt")) == "models/mnist32-cpu/dm_ema.pt"


def test_shown_path_stays_absolute_outside_the_project(tmp_path):
    assert Path(shown_path(tmp_path / "x.pt")).is_absolute()
