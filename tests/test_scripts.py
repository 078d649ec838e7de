"""The scripts that make records outside the book keep to the book's settings and refuse bad input."""

import ast
import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "research" / f"{name}.py")
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
    settings = ("M=2", "batch=2", "checkpoint_every=1", "lambda_div=1.0", "n_eval=2")
    (tmp_path / "results" / "mnist32-cpu").mkdir(parents=True)  # the proxy's thresholds, as committed
    (tmp_path / "results" / "mnist32-cpu" / "mos_proxy.json").write_bytes(
        real_path("results/mnist32-cpu/mos_proxy.json").read_bytes())
    probe.main("tiny", "steps=2", *settings)
    record = tmp_path / "results" / "mnist32-cpu" / "probes.json"
    entry = json.loads(record.read_text())["probes"][0]
    assert entry["name"] == "tiny@2" and entry["steps"] == 2 and entry["config"]["M"] == 2 and entry["n_eval"] == 2
    assert 0 <= entry["rca"] <= 1 and 0 <= entry["rca_uniform_s"] <= 1 and entry["fidelity"]["fd_ratio"] > 0
    assert 0 <= entry["mos_proxy"] <= 1 and 0 <= entry["mos_proxy_random"] <= 1  # scored on the committed thresholds
    assert entry["mos_proxy_random_size"]["target"] == entry["interpretability"]["median_change_half"]
    assert len(entry["interpretability"]["top_rho"]) == 32 and 1 <= entry["effects"]["distinct_effects"] <= 32
    assert "overlap_curve" in entry  # the effect penalty's own measure, recorded when it is on
    assert json.loads((tmp_path / "runs" / "probe" / "tiny" / "probe@2.json").read_text())["name"] == "tiny@2"
    probe.main("tiny", "evaluate=true", *settings)  # a point along the run, beside the probe
    names = [p["name"] for p in json.loads(record.read_text())["probes"]]
    assert names == ["tiny@2", "tiny@2-n2"]
    probe.main("tiny", "evaluate=true", "n_eval=2")  # scored with the run's own settings when none are given
    again = json.loads(record.read_text())["probes"]
    assert [p["name"] for p in again] == names and again[1]["config"] == entry["config"]
    with pytest.raises(ValueError, match="another discovery config"):
        probe.main("tiny", "evaluate=true", "n_eval=2", "M=3")


def test_a_probe_on_another_dm_records_which_and_is_scored_on_it_again(tmp_path, monkeypatch):
    import json
    import shutil

    probe = _script("probe_discovery")
    real_path = probe.project_path
    monkeypatch.setattr(probe, "project_path",
                        lambda p: tmp_path / p if str(p).startswith(("runs", "results")) else real_path(p))
    monkeypatch.setattr(probe, "SCORE", {"rca_pairs": 4, "fd_samples": 16, "effect_noises": 2})
    other = tmp_path / "runs" / "other" / "dm_ema.pt"
    other.parent.mkdir(parents=True)
    shutil.copy(real_path("models/mnist32-cpu/dm_ema.pt"), other)
    probe.main("tiny", "steps=1", "M=2", "batch=2", "n_eval=1", "dm=runs/other/dm_ema.pt")
    record = tmp_path / "results" / "mnist32-cpu" / "probes.json"
    entry = json.loads(record.read_text())["probes"][0]
    assert entry["dm"] == {"path": str(other.resolve()), "sha256": probe.sha256(other)}
    with pytest.raises(SystemExit, match="was trained on DM .*other/dm_ema.pt: give dm= as then"):
        probe.main("tiny@1", "effects=true")
    book = json.loads(record.read_text())
    scored = book["probes"][0].pop("effects")
    record.write_text(json.dumps(book))
    probe.main("tiny@1", "effects=true", "dm=runs/other/dm_ema.pt")  # the same DM, the same count
    assert json.loads(record.read_text())["probes"][0]["effects"] == scored


@pytest.mark.parametrize("args, message", [(["pairs=16"], "unknown setting"), (["only=pca"], "only must be one of"),
                                           (["n_train=8"], "n_train must be >= 16")])
def test_rca_ceiling_refuses_bad_settings_before_any_work(args, message):
    with pytest.raises(SystemExit, match=message):
        _script("rca_ceiling").main(*args)


def test_rca_ceiling_reads_the_frozen_directions_with_every_reader_and_resumes_from_its_pairs(tmp_path, monkeypatch):
    import json

    ceiling = _script("rca_ceiling")
    real_path = ceiling.project_path
    monkeypatch.setattr(ceiling, "project_path",
                        lambda p: tmp_path / p if str(p).startswith(("runs", "results")) else real_path(p))
    monkeypatch.setattr(ceiling, "CHUNK", 2)  # 2 noises a chunk: the pool of 16 pairs is 2 chunks, the test 2
    settings = ("n_train=16", "n_test=4", "epochs=1")
    with pytest.raises(SystemExit, match=r"random-equal-change: no equal-change size .*\(run research/equal_change.py"):
        ceiling.main(*settings, "only=random-equal-change")  # its size comes from equal_change.json
    ceiling.main(*settings, "only=learned")
    ceiling.main(*settings, "only=random")
    assert not (tmp_path / "results").exists()  # one set alone keeps its rows under runs/
    (tmp_path / "results" / "mnist32-cpu").mkdir(parents=True)  # the committed record, of the committed models
    equal = real_path("results/mnist32-cpu/equal_change.json")
    (tmp_path / "results" / "mnist32-cpu" / "equal_change.json").write_bytes(equal.read_bytes())
    ceiling.main(*settings)
    record = json.loads((tmp_path / "results" / "mnist32-cpu" / "rca_ceiling.json").read_text())
    readers = [(r["set"], r["reader"], r["n_train"]) for r in record["rows"]]
    assert readers == [("learned", "as trained", 0), ("learned", "as trained, then refit", 4),
                       ("learned", "as trained, then refit", 16), ("learned", "fresh", 4), ("learned", "fresh", 16),
                       ("random", "fresh", 4), ("random", "fresh", 16),
                       ("random-equal-change", "fresh", 4), ("random-equal-change", "fresh", 16)]
    assert all(0 <= r["rca"] <= 1 and r["n_test"] == 4 for r in record["rows"])
    by = {(r["method"], r["size"]): r["rel"] for r in json.loads(equal.read_text())["rows"]}
    assert record["rel_equal_change"] == by[("random", "equal change")] > record["rel"] == 0.1
    assert set(record["models"]) == {"dm", "directions"} and record["s_min"] == 1.0
    runs = tmp_path / "runs" / "rca_ceiling"
    assert len(list((runs / "learned" / "train").glob("chunk-*.pt"))) == 2
    # the same noises, k and s for both sets: only the directions differ
    first = [torch.load(runs / name / "test" / "chunk-0.pt", weights_only=True)["pairs"]
             for name in ("learned", "random", "random-equal-change")]
    assert all(torch.equal(first[0][0], f[0]) and torch.equal(first[0][2], f[2]) for f in first[1:])
    assert not torch.equal(first[0][1], first[1][1])
    equal_change = (first[2][1] - first[2][0]).abs().mean() / (first[1][1] - first[1][0]).abs().mean()
    assert equal_change > 1.5  # the same random directions, larger
    (runs / "learned" / "rows.json").unlink()  # scored again from the kept pairs: the same rows
    stamp = {p: p.stat().st_mtime_ns for p in runs.rglob("chunk-*.pt")}
    ceiling.main(*settings)
    again = json.loads((tmp_path / "results" / "mnist32-cpu" / "rca_ceiling.json").read_text())
    assert again["rows"] == record["rows"]
    assert stamp == {p: p.stat().st_mtime_ns for p in runs.rglob("chunk-*.pt")}


@pytest.mark.parametrize("args, message", [(["noises=8"], "unknown setting"), (["n=0"], "n must be >= 1")])
def test_shift_window_refuses_bad_settings_before_any_work(args, message):
    with pytest.raises(SystemExit, match=message):
        _script("shift_window").main(*args)


def test_a_shift_window_edits_only_inside_it(unet, discovery):
    """t_start at the top of the chain is Shifted itself; at t_stop, plain DDIM; between, neither."""
    from hdisc.sampling import Shifted, sample_ddim

    windowed = _script("shift_window").Windowed
    torch.manual_seed(0)
    for p in discovery.shift.parameters():
        p.data.normal_(0, 0.5)
    steps, z = unet.steps(5), torch.randn(2, 1, 32, 32)
    top, t_stop, middle = int(steps.t[0]), int(steps.t[-1]), int(steps.t[2])
    k, s = torch.tensor([0, 1]), torch.tensor([2.0, -2.0])

    def edit(model):
        with torch.no_grad():
            return sample_ddim(model, z, steps, disable=True)

    whole, plain = edit(Shifted(unet, discovery.shift, k, s, t_stop)), edit(unet)
    torch.testing.assert_close(edit(windowed(unet, discovery.shift, k, s, t_stop, t_start=top)), whole)
    torch.testing.assert_close(edit(windowed(unet, discovery.shift, k, s, t_stop, t_start=t_stop)), plain)
    part = edit(windowed(unet, discovery.shift, k, s, t_stop, t_start=middle))
    assert (part - plain).abs().max() > 1e-4 and (part - whole).abs().max() > 1e-4


def test_rescale_heads_keeps_the_committed_edits_and_refuses_to_overwrite(tmp_path):
    rescale = _script("rescale_heads")
    dst = tmp_path / "start.pt"
    rescale.main(["models/mnist32-cpu/directions.pt", str(dst), "n=4", "target=3"])
    blob = torch.load(dst, weights_only=True)
    done = blob["rescaled_heads"]
    assert done["from"] == "models/mnist32-cpu/directions.pt" and done["target"] == 3.0 and done["n"] == 4.0
    assert len(done["smallest_before"]) == 32 and min(done["smallest_before"]) > 3  # the heads outgrew the cap
    assert done["edits_moved"] < rescale.EDITS_KEPT
    with pytest.raises(SystemExit, match="exists: name a new file"):
        rescale.main(["models/mnist32-cpu/directions.pt", str(dst)])
    with pytest.raises(SystemExit, match=r"unknown setting\(s\) \['size'\]"):
        rescale.main(["models/mnist32-cpu/directions.pt", str(tmp_path / "other.pt"), "size=2"])


def test_the_head_sizes_that_findings_and_script_quote_are_what_the_default_command_measures(tmp_path):
    rescale = _script("rescale_heads")
    dst = tmp_path / "default.pt"
    rescale.main(["models/mnist32-cpu/directions.pt", str(dst)])  # the README's command: n=64, seed=11, target=2
    before = torch.load(dst, weights_only=True)["rescaled_heads"]["smallest_before"]
    quoted = f"{min(before):.1f}-{max(before):.1f} times the cap"
    findings = " ".join((ROOT / "book" / "findings.md").read_text().split())  # the research log's home
    assert quoted in findings and quoted in rescale.__doc__


def test_h_spectrum_scores_each_dm_it_is_given_and_reads_its_training_step(tmp_path, monkeypatch, unet, smoke):
    import json
    import shutil

    from hdisc.backbone import save_unet

    spectrum = _script("h_spectrum")
    real_path = spectrum.project_path
    monkeypatch.setattr(spectrum, "project_path",
                        lambda p: tmp_path / p if str(p).startswith("results") else real_path(p))
    committed = real_path("models/mnist32-cpu/dm_ema.pt")
    alone = tmp_path / "alone" / "dm_ema.pt"  # a DM file without a checkpoint beside it
    alone.parent.mkdir()
    shutil.copy(committed, alone)
    other = tmp_path / "other" / "dm_ema.pt"  # another UNet configuration (the smoke preset's), read from the file
    other.parent.mkdir()
    save_unet(unet.net, smoke.unet, other)
    spectrum.main(f"dm={committed},{alone},{other}", "n=1", "k=2", "iters=1", "n_quality=4", "r=2")
    record = json.loads((tmp_path / "results" / "mnist32-cpu" / "h_spectrum.json").read_text())
    first, second, third = record["rows"]
    assert third["nodes_t"] == first["nodes_t"] and third["sigma_ratio"] != first["sigma_ratio"]
    assert first["trained_steps"] == 12000 and second["trained_steps"] is None
    assert first["nodes_t"] == [999, 888, 777, 666, 555, 444]  # the cpu preset's 10-step chain above t_stop 400
    assert all(len(r) == 2 and r[0] == 1 >= r[1] > 0 for r in first["sigma_ratio"])
    assert first["sigma_ratio"] == second["sigma_ratio"] and 1 <= min(first["answered_0.25"])
    assert first["quality"]["n"] == 4 and first["quality"]["samples"]["fd_mnistnet"] > 0
    learned = record["learned"]  # the committed directions on the committed DM
    assert len(learned["share"]) == 32
    assert all(len(row) == 6 and all(0 <= v <= 1 for v in row) for row in learned["share"])
    assert len(learned["change"]) == 32 and len(learned["spearman"]) == 6
    assert learned["random_share"] == round(2 / 4096, 6)  # r / dim(h), h 64 x 8 x 8
    assert set(record["models"]) == {"dm_0", "dm_1", "dm_2", "learned_dm", "learned_directions"}


@pytest.mark.parametrize("args, message", [(["noises=8"], r"unknown setting\(s\) \['noises'\]: give dm="),
                                           (["n4"], r"unknown setting\(s\) \['n4'\]"),
                                           (["k=0"], "must be >= 1"),
                                           (["learned=yes"], "learned must be true or false"),
                                           (["dm=/nowhere/dm_ema.pt"], "no DM file at /nowhere/dm_ema.pt")])
def test_h_spectrum_refuses_bad_settings_before_any_work(args, message):
    with pytest.raises(SystemExit, match=message):
        _script("h_spectrum").main(*args)
