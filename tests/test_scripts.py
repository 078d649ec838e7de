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


def test_a_probe_trains_scores_and_records_itself_then_scores_its_latest_weights(tmp_path, monkeypatch):
    import json

    probe = _script("probe_discovery")
    real_path = probe.project_path  # reads the committed DM and MnistNet, writes runs/ and results/ under tmp_path
    monkeypatch.setattr(probe, "project_path",
                        lambda p: tmp_path / p if str(p).startswith(("runs", "results")) else real_path(p))
    monkeypatch.setattr(probe, "SCORE", {"rca_pairs": 4, "fd_samples": 16, "effect_noises": 2})
    settings = ("M=2", "batch=2", "checkpoint_every=1", "lambda_div=1.0", "n_eval=1")
    probe.main("tiny", "steps=2", *settings)
    record = tmp_path / "results" / "mnist32-cpu" / "probes.json"
    entry = json.loads(record.read_text())["probes"][0]
    assert entry["name"] == "tiny" and entry["steps"] == 2 and entry["config"]["M"] == 2 and entry["n_eval"] == 1
    assert 0 <= entry["rca"] <= 1 and entry["fidelity"]["fd_ratio"] > 0
    assert len(entry["interpretability"]["top_rho"]) == 32 and 1 <= entry["effects"]["distinct_effects"] <= 32
    assert "overlap_curve" in entry  # the effect penalty's own measure, recorded when it is on
    assert json.loads((tmp_path / "runs" / "probe" / "tiny" / "probe.json").read_text())["name"] == "tiny"
    probe.main("tiny", "evaluate=true", *settings)  # a point along the run, beside the probe
    names = [p["name"] for p in json.loads(record.read_text())["probes"]]
    assert names == ["tiny", "tiny@2-n1"]
