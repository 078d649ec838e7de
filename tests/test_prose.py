"""Each chapter's closing paragraph is filled from its record: known numbers in, the same out."""

import json
from pathlib import Path

import pytest

from hdisc.prose import WRITERS, what_this_shows

RESULTS = Path(__file__).resolve().parents[1] / "results" / "mnist32-cpu"


def test_the_directions_paragraph_reads_its_record():
    record = {"order": [7, 5], "change": [0.581, 0.3], "realism": [0.29, 0.44], "mean_abs_similarity_all": 0.32,
              "interpretability": {"n_images": 32, "svals": list(range(9)), "summary": {
                  "K": 32, "interpretable": [1, 2, 3], "interpretable_fraction": 3 / 32, "signed_fraction": 0.125,
                  "smooth_fraction": 0.6875, "median_keep_half": 0.23, "named_fraction": 0.5, "disentanglement": 0.07},
                  "directions": [{"k": 4, "attribute": "slant+", "attribute_rho": 0.81, "passes": True,
                                  "keep_half": 0.9, "signed": True, "smooth": True},
                                 {"k": 9, "attribute": None, "attribute_rho": 0.1, "passes": False,
                                  "keep_half": 0.5, "signed": False, "smooth": True}]}}
    text = what_this_shows("directions", record)
    assert text.startswith("**What this shows.** The direction shown first is 7 (change 0.581, realism 0.29)")
    assert "3 of 32 directions (9%) are signed" in text and "12% move the image" in text
    assert "keeps the digit in 23% of the edits" in text and "direction 4, slant+, rho 0.81" in text
    assert "a high RCA here rewards edits that are easy to recognise" in text  # the caveat below half
    record["interpretability"]["summary"]["interpretable_interval"] = [0.0625, 0.1875]
    text = what_this_shows("directions", record)
    assert "3 of 32 directions (9%; 95% bootstrap interval over the noises 6%-19%) are signed" in text
    assert ("Of the 1 that fail, 1 keep the digit in fewer than 80% of their edits at |s| = S/2, 1 move the image "
            "alike for +s and -s and 0 jump.") in text
    assert "so most do different things." in text
    record["interpretability"]["summary"]["median_keep_half"] = 0.84  # the median direction keeps the digit
    assert "change what the digit is" not in what_this_shows("directions", record)
    assert "beyond chance" not in what_this_shows("directions", record)  # no equal-change record: no floor
    record["interpretability"] |= {"name_floor": 0.6234, "named_beyond": [2, 3]}
    assert ("only when its |rho| exceeds 0.62, the 95th percentile over random directions that change the image as "
            "much (`equal_change.json`): 2 of 32 directions pass and clear it (2, 3).") in what_this_shows(
                "directions", record)
    record["interpretability"]["named_beyond"] = []
    assert "none of the directions that pass clears it." in what_this_shows("directions", record)


def test_the_directions_paragraph_names_directions_that_change_the_image_alike():
    record = json.loads((RESULTS / "directions.json").read_text())
    record |= {"K": 32, "alike_threshold": 0.7, "alike_groups": [[4, 6, 15, 26, 30], [11, 13]],
            "distinct_effects": 27}
    text = " ".join(what_this_shows("directions", record).split())
    assert ("but 7 of the 32 fall into 2 groups that change the image alike (|cosine| >= 0.7; the largest: "
            "directions 4, 6, 15, 26, 30). That leaves 27 distinct effects: if a group's members could not be told "
            "apart at all, a reconstructor could name at most 27 of 32 directions, an RCA of 0.84.") in text


def test_the_fid_paragraph_says_when_editing_costs_realism():
    record = {"n": 1000, "M": 5, "rows": [{"features": "FD-MnistNet", "raw": 238.2, "shifted": 431.0}]}
    text = what_this_shows("fid", record)
    assert "rises from 238.2 (raw samples) to 431.0" in text and "a ratio of 1.81" in text
    assert "Editing costs realism here" in text
    record["rows"][0]["shifted"] = 240.0
    assert "Editing costs little realism" in what_this_shows("fid", record)


def test_the_training_paragraph_never_reports_rca_alone():
    record = {"steps": 9850, "preset": "cpu", "K": 32, "M": 5, "batch": 16, "rca": 0.863,
              "d_fake": 0.27, "d_real": 0.76}
    text = what_this_shows("train", record)
    assert "86% of 256 fresh pairs (chance 3%)" in text and "0.27 to shifted samples against 0.76" in text
    at_chance = what_this_shows("train", record | {"rca": 0.043, "rca_n": 256})  # probe p1's: within chance
    assert "within chance of guessing" in at_chance and "the directions differ" not in at_chance
    assert "the directions differ" in what_this_shows("train", record | {"rca": 0.08, "rca_n": 1000})


def _truth_record() -> dict:
    """A truth.json of two families (no shapes32 record is committed until a shapes DM is released)."""
    def row(method, d, gap):
        return {"method": method, "disentanglement": d, "completeness": d / 2,
                "interval": {"disentanglement": [d - 0.05, d + 0.05]},
                "gap": {"x": gap, "hue": 0.1}, "purity": {"x": 0.8, "hue": 0.2},
                "rank_correlation": {"x": 0.9, "hue": 0.1}}
    return {"n_noises": 32, "target_change": 0.05, "rows": [row("PCA (pooled)", 0.6, 0.7),
                                                            row("random (scored)", 0.1, 0.2)]}


@pytest.mark.parametrize("chapter", sorted(WRITERS))
def test_every_committed_record_has_its_paragraph(chapter):
    path = RESULTS / f"{chapter}.json"
    if chapter in ("train_dm", "train"):
        path = RESULTS.parents[1] / "models" / "mnist32-cpu" / f"{chapter}.json"
    record = _truth_record() if chapter == "truth" else json.loads(path.read_text())
    text = what_this_shows(chapter, record)
    assert text.startswith("**What this shows.**") and len(text) > 80
    if chapter == "truth":
        assert "random directions score disentanglement 0.10 (0.05-0.15)" in text
        assert "PCA (pooled): disentanglement 0.60 (above random's interval), recovers x." in text


def test_an_unknown_chapter_is_refused():
    with pytest.raises(ValueError, match="no paragraph for chapter 'nope'"):
        what_this_shows("nope", {})


def _row(method, passing, rca, chance=0.031):
    return {"method": method, "interpretable_fraction": passing, "posthoc_rca": rca, "posthoc_chance": chance}


def test_the_compare_paragraph_says_when_the_yardstick_cannot_tell_methods_apart():
    small = {"rel": 0.1, "rows": [_row("learned", 0.97, 0.03), _row("PCA (pooled)", 0.88, 0.027),
                                  _row("random", 1.0, 0.035)]}
    for row, change in zip(small["rows"], (0.02, 0.04, 0.005), strict=True):
        row["median_change_half"] = change
    text = what_this_shows("compare", small)
    assert "At one step size (|dh| = |s| x 0.1 x rms(h)), random has the most directions that pass (100%)" in text
    assert "passing does not single a method out" in text and "below twice chance" in text
    assert "random directions move the image by 0.005 at S/2, the median method by 0.040" in text
    assert "trained on" not in text  # no budget in the record, none said
    text = what_this_shows("compare", small | {"posthoc": {"n_train": 512, "n_test": 256, "epochs": 8}})
    assert "below twice chance) trained on 512 pairs for 8 passes: too few to rank the methods by it" in text
    visible = {"rel": 0.5, "rows": [_row("learned", 0.5, 0.4), _row("PCA (pooled)", 0.38, 0.2),
                                    _row("random", 0.16, 0.1)]}
    text = what_this_shows("compare", visible)
    assert "learned has the most directions that pass (50%) and learned the most recognisable" in text
    assert "Random directions, the floor, reach 16%" in text
    assert "does not single" not in text and "below twice chance" not in text
    own = [_row("learned, as trained", 0.53, 0.3), _row("random", 0.9, 0.03)]
    for row, size, change in zip(own, ("as trained (cap)", "equal |dh|"), (0.028, 0.016), strict=True):
        row.update(size=size, median_change_half=change)
    visible["own_size"] = {"rel": 0.1, "target_change": 0.028, "rows": own}
    text = what_this_shows("compare", visible)
    assert ("At the learned model's own size (0.1 x rms(h)), its directions pass 53% as trained, random directions "
            "of that size 90%: there passing does not single the learned set out (random edits move the image by "
            "0.016 at S/2, the learned ones by 0.028: the test favours edits that change little).") in text
    assert "equal image change" not in text
    for name, passing, change in (("PCA (pooled)", 0.4, 0.027), ("random", 0.6, 0.030)):
        own.append(_row(name, passing, 0.03) | {"size": "equal change", "median_change_half": change})
    visible["n_interp"] = 4
    assert ("At equal image change (every other method rescaled until its median edit at S/2 moves the image by "
            "0.028, as the learned one does; realised 0.027-0.030), the learned set passes 53%, the training-free "
            "methods 40%, random directions 60% (against 90% at equal |dh|). Matched in visible change, the learned "
            "directions do not beat the random floor and pass more often than every training-free method (4 noises "
            "per direction: a few directions either way are within noise).") in what_this_shows("compare", visible)
    own[-1]["interpretable_fraction"] = 0.2
    assert ("random directions 20% (against 90% at equal |dh|). Matched in visible change, the learned directions "
            "beat the random floor and every training-free method (4") in what_this_shows("compare", visible)
    own[2]["interpretable_fraction"] = 0.7
    assert ("the training-free methods 70%, random directions 20% (against 90% at equal |dh|). Matched in visible "
            "change, the learned directions beat the random floor and pass less often than the training-free "
            "methods") in what_this_shows("compare", visible)
    own[1]["interpretable_fraction"] = 0.2
    assert "there the learned set beats the floor." in what_this_shows("compare", visible)
    assert "has a name" not in what_this_shows("compare", visible)  # no null of a name recorded
    visible["own_size"]["name_floor"] = 0.6234
    for row, named in zip(own, (0.125, 0.0, 0.0625, 0.03125), strict=True):
        row["named_beyond_random"] = named
    assert ("Counting only the directions that pass and move a stroke measure more consistently than 95% of the "
            "random ones at equal change (|rho| > 0.62): the learned set 12%, PCA (pooled) 6%.") in what_this_shows(
                "compare", visible)
