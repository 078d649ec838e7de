"""The scripts that make records outside the book keep to the book's settings and refuse bad input."""

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parameters(chapter: str) -> dict:
    """The defaults of a chapter's parameters cell (experiments/<chapter>.py)."""
    cell = (ROOT / "experiments" / f"{chapter}.py").read_text().split('# %% tags=["parameters"]\n')[1]
    cell = cell.split("# %%")[0]
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell).body
            if isinstance(node, ast.Assign)}


def test_equal_change_uses_the_compare_chapters_settings():
    chapter, script = _parameters("compare"), _script("equal_change").CHAPTER
    assert script == {key: chapter[key] for key in script}


@pytest.mark.parametrize("args, message", [(["noises=16"], "unknown setting"),
                                           (["n_interp=0"], "n_interp must be >= 1")])
def test_equal_change_refuses_bad_settings_before_any_work(args, message):
    with pytest.raises(SystemExit, match=message):
        _script("equal_change").main(*args)


def test_probe_effects_refuses_a_probe_that_was_not_recorded():
    with pytest.raises(SystemExit, match="no probe 'never-ran' in .*probes.json"):
        _script("probe_discovery").main("never-ran", "effects=true")
