"""The book's chapter notebooks run end to end under papermill at the smoke preset."""

import json

import papermill
import pytest
import torch
from test_notebooks import run

from hdisc.directions import alike_groups, distinct_effects

pytestmark = pytest.mark.slow  # every chapter under papermill


def test_directions_chapter(tmp_path, trained):
    out = run("directions", tmp_path, n_rank=2, n_interp=2, n_examples=2, n_show=2, **trained)
    record = json.loads((out / "directions.json").read_text())
    assert sorted(record["order"]) == [0, 1, 2, 3]
    assert record["ranked_by"] == ("passes the interpretability evaluation, then named beyond random (when a floor is "
                                   "recorded), then change * realism")
    interp = record["interpretability"]
    assert [row["k"] for row in interp["directions"]] == [0, 1, 2, 3] and interp["n_images"] == 2
    passes = [interp["directions"][k]["passes"] for k in record["order"]]
    assert passes == sorted(passes, reverse=True)  # the directions that pass lead
    score = [c * r for c, r in zip(record["change"], record["realism"], strict=True)]
    for group in (True, False):  # within each group, by change x realism
        part = [sc for sc, p in zip(score, passes, strict=True) if p is group]
        assert part == sorted(part, reverse=True)
    assert all(0 < r <= 1 for r in record["realism"])
    assert 0 <= interp["summary"]["interpretable_fraction"] <= 1 and len(interp["matrix"]) == 4
    assert interp["name_floor"] is None and interp["named_beyond"] is None  # no equal-change record for it
    assert 0 <= record["mean_abs_similarity_all"] <= 1 and 0 <= record["mean_abs_similarity_top16"] <= 1
    sim = torch.tensor(record["similarity"])  # the full matrix, and its groups of alike directions
    assert sim.shape == (4, 4) and record["alike_groups"] == alike_groups(sim, record["alike_threshold"])
    assert record["distinct_effects"] == distinct_effects(record["alike_groups"], 4)


def test_real_editing_chapter(tmp_path, trained):
    out = run("real_editing", tmp_path, n_real=2, invert_steps=4, n_dirs=2, n_rank=2, **trained)
    record = json.loads((out / "real_editing.json").read_text())
    assert len(record["directions"]) == 2 and record["recon_mean_abs_err"] >= 0


def test_properties_chapter(tmp_path, trained):
    out = run("properties", tmp_path, n_mean=3, n_real=2, invert_steps=4, ks=[1], **trained)
    rows = json.loads((out / "properties.json").read_text())["rows"]
    assert [r["k"] for r in rows] == [1] and rows[0]["mean_vs_sample"] >= 0


def test_rca_mos_chapter_reports_no_mos_without_files(tmp_path, trained):
    out = run("rca_mos", tmp_path, n_rca=4, n_examples=1, mos_dir=str(tmp_path / "mos"), **trained)
    record = json.loads((out / "rca_mos.json").read_text())
    assert record["mos"] is None and 0 <= record["rca"] <= 1 and record["paper_rca"] == 0.77
    assert record["rca_uniform_s"] == record["rca"] and record["s_min"] == 0  # the smoke preset draws s as the paper
    assert "mos_proxy" not in record  # no proxy record for these models


def test_rca_mos_chapter_aggregates_annotation_files(tmp_path, trained):
    (tmp_path / "mos").mkdir()
    (tmp_path / "mos" / "ann.json").write_text(json.dumps({"assessor": "ann", "marks": {"0": 1, "1": 0}}))
    out = run("rca_mos", tmp_path, n_rca=2, n_examples=1, mos_dir=str(tmp_path / "mos"), **trained)
    assert json.loads((out / "rca_mos.json").read_text())["mos"]["mos"] == 0.5


def test_fid_chapter(tmp_path, trained):
    out = run("fid", tmp_path, n=20, **trained)
    record = json.loads((out / "fid.json").read_text())
    rows = record["rows"]
    assert rows[0]["features"] == "FD-MnistNet" and rows[0]["raw"] > 0 and rows[0]["shifted"] > 0
    assert record["models"]["dm"]["path"] == trained["dm_checkpoint"]  # outside the project: absolute
    assert record["models"]["directions"]["path"] == trained["directions"] and record["environment"]["torch"]


def test_explore_chapter_saves_the_explorer_widget(tmp_path, trained):
    run("explore", tmp_path, n_real=2, n_rank=2, **trained)
    nb = json.loads((tmp_path / "explore.ipynb").read_text())
    views = [o["data"]["application/vnd.jupyter.widget-view+json"] for c in nb["cells"] for o in c.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    models = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    names = {m["model_name"] for m in models.values()}
    assert {"FloatSliderModel", "DropdownModel", "ImageModel"} <= names  # strength, direction, the image
    assert views and all(v["model_id"] in models for v in views)  # the explorer (and tqdm's progress bars)


def test_a_chapter_without_a_direction_model_names_the_notebook_to_run(tmp_path, trained):
    with pytest.raises(papermill.PapermillExecutionError, match="run experiments/train.ipynb first"):
        run("directions", tmp_path, dataset="celebahq128", dm_checkpoint=trained["dm_checkpoint"])


def test_compare_chapter(tmp_path, trained):
    out = run("compare", tmp_path, n_pca=8, jacobian_iters=1, n_interp=2, n_train=4, n_test=2, epochs=1, n_show=1,
              **trained)
    record = json.loads((out / "compare.json").read_text())
    methods = [r["method"] for r in record["rows"]]
    assert methods == ["learned (this paper)", "PCA (pooled)", "Jacobian (one image)", "supervised", "random"]
    for row in record["rows"]:
        for key in ("interpretable_fraction", "named_fraction", "posthoc_rca", "fd_ratio"):
            assert row[key] is not None and row[key] >= 0
        assert len(row["attributes"]) == row["K"] == len(row["names"])
    assert record["rows"][0]["K"] == 4 and len(record["jacobian_sigma"]) == 4
    own = record["own_size"]  # the smoke shifts are free: no random row at equal |dh|, every other at equal change
    assert own["rel"] is None and own["target_change"] > 0
    assert [(r["method"], r["size"]) for r in own["rows"]] == [("learned, as trained", "as trained")] + [
        (m, "equal change") for m in methods[1:]]
    assert all(r["rel"] > 0 for r in own["rows"][1:])
    assert list(record["leading"]) == methods and (out / "compare_directions.png").stat().st_size > 0
    again = run("compare", tmp_path / "again", from_record=str(out / "compare.json"), **trained)  # shown, not scored
    assert (again / "compare.json").read_bytes() == (out / "compare.json").read_bytes()
    assert (again / "compare_directions.png").read_bytes() == (out / "compare_directions.png").read_bytes()
    stale = dict(record, models={**record["models"], "directions": {**record["models"]["directions"], "sha256": "0"}})
    (tmp_path / "stale.json").write_text(json.dumps(stale))  # a record of other model files
    with pytest.raises(papermill.PapermillExecutionError, match="was made from other model files"):
        run("compare", tmp_path / "bad", from_record=str(tmp_path / "stale.json"), **trained)
