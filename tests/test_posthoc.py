"""Post-hoc RCA: a fresh reconstructor tells apart directions that differ, and not others."""

import pytest
import torch

from hdisc.baselines import matched_size, random_directions, random_set
from hdisc.direction_set import DirectionSet, FixedDirections
from hdisc.directions import edit_pairs
from hdisc.discovery import Reconstructor
from hdisc.interpret import name_floor, named_beyond
from hdisc.metrics import MnistNet
from hdisc.posthoc import posthoc_rca, read_pairs, recorded_name_floor, score_at_equal_change
from hdisc.runs import write_record
from hdisc.schedule import ddim_steps


def _pairs(n, K, informative, seed):
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 1, 32, 32, generator=gen) * 2 - 1
    k = torch.randint(K, (n,), generator=gen)
    s = (torch.rand(n, generator=gen) * 2 - 1) * 2
    patterns = torch.zeros(K, 1, 32, 32)
    for j in range(K):
        patterns[j, 0, 8 * j:8 * j + 8, :] = 0.5  # direction j brightens band j
    shown = k if informative else torch.randint(K, (n,), generator=gen)  # uninformative: another band
    return x0, x0 + patterns[shown] * s.sign()[:, None, None, None], k, s


def test_distinct_edits_are_recognised_and_unrelated_ones_are_not():
    good = posthoc_rca(_pairs(512, 4, True, 0), _pairs(256, 4, True, 1), 4, epochs=4)
    bad = posthoc_rca(_pairs(512, 4, False, 0), _pairs(256, 4, False, 1), 4, epochs=4)
    assert good["rca"] > 0.9 and bad["rca"] < 0.45 and good["chance"] == 0.25
    assert good["n_train"] == 512 and good["n_test"] == 256


class _ReadsLargeEdits(torch.nn.Module):
    """A reader that knows k (pixel 0 of x0) but names it right only when |s| > 3 (pixel 0 of xs - x0)."""

    def forward(self, x0, xs):
        k, s = x0[:, 0, 0, 0].long(), (xs - x0)[:, 0, 0, 0]
        return torch.nn.functional.one_hot(torch.where(s.abs() > 3, k, (k + 1) % 4), 4).float(), s


def test_reading_pairs_gives_the_accuracy_for_each_range_of_edit_size():
    s = torch.tensor([1.0, -1.5, 2.0, -2.5, 3.5, -3.9, 4.5, -5.0])  # two in each of [1, 2), [2, 3), [3, 4), [4, 5]
    x0 = torch.zeros(8, 1, 2, 2)
    x0[:, 0, 0, 0] = torch.arange(8) % 4
    net = _ReadsLargeEdits()
    net.train()
    read = read_pairs(net, (x0, x0 + s[:, None, None, None], torch.arange(8) % 4, s), batch=3)
    assert read["rca"] == 0.5 and read["mag_err"] == 0 and net.training  # its mode is given back
    assert [b["abs_s"] for b in read["rca_by_abs_s"]] == [[1, 2], [2, 3], [3, 4], [4, 5]]
    assert [(b["rca"], b["n"]) for b in read["rca_by_abs_s"]] == [(0, 2), (0, 2), (1, 2), (1, 2)]


def test_training_on_from_a_reconstructor_leaves_it_as_it_was():
    train, test = _pairs(256, 4, True, 0), _pairs(128, 4, True, 1)
    start = Reconstructor(1, 4, small=True, with_difference=True)
    before = {name: p.clone() for name, p in start.state_dict().items()}
    fit = posthoc_rca(train, test, 4, epochs=2, net=start)
    assert all(torch.equal(p, before[name]) for name, p in start.state_dict().items())
    assert fit["rca"] > read_pairs(start, test)["rca"]  # the copy learned


def test_edit_pairs_of_fixed_directions(unet):
    dirs = DirectionSet(FixedDirections(random_directions(3, (64, 16, 16)), rel=0.5), 3, 2.0, ddim_steps(3), 400)
    x0, xs, k, s = edit_pairs(unet, dirs, n_noise=2, per_noise=3, seed=0, batch=4)
    assert x0.shape == xs.shape == (6, 1, 32, 32) and k.max() < 3 and s.abs().max() <= 2
    assert torch.equal(x0[0], x0[2]) and not torch.equal(x0[0], x0[3])  # one plain sample per noise
    assert (xs - x0).abs().mean() > 0


def test_equal_change_scores_the_learned_set_as_trained_and_the_others_at_its_change(unet, smoke, dirs):
    torch.manual_seed(0)
    net, real = MnistNet().eval(), torch.rand(64, 1, 32, 32) * 2 - 1
    learned = dirs.at_size(0.2)  # a learned set trained with |dh| capped at 0.2 rms(h)
    floor = random_set(dirs, smoke.unet.h_shape, 0.5, seed=3)
    budget = {"n_interp": 2, "n_train": 2, "n_test": 1, "epochs": 1, "seed": 0}
    own = score_at_equal_change(unet, learned, {"random": floor}, net, real, smoke.unet.h_shape, rel=0.5,
                                **budget)
    assert own["rel"] == 0.2 and own["target_change"] > 0
    assert [(r["method"], r["size"]) for r in own["rows"]] == [
        ("learned, as trained", "as trained (cap)"), ("random", "equal |dh|"), ("random", "equal change")]
    assert own["rows"][1]["rel"] == 0.2
    # the equal-change row is the size matched_size finds on the evaluation's noises, and moves the image that far
    size, reached = matched_size(unet, floor, own["target_change"], 0.5, n=2, seed=1)
    assert own["rows"][2]["rel"] == pytest.approx(size)
    assert own["rows"][2]["median_change_half"] == pytest.approx(reached, rel=0.01)  # edited in other batches
    # random directions at equal change are the null of a name
    assert own["name_floor"] == pytest.approx(name_floor(own["rows"][2]["top_rho"]))
    for r in own["rows"]:
        assert r["named_beyond_random"] == len(named_beyond(r, own["name_floor"])) / r["K"]
    assert own["rows"][2]["named_beyond_random"] <= 1 / 3  # of 3, only the largest |rho| exceeds the 95th percentile
    free = score_at_equal_change(unet, dirs, {}, net, real, smoke.unet.h_shape, rel=0.5, **budget)
    assert free["rel"] is None and [r["size"] for r in free["rows"]] == ["as trained"]
    assert "name_floor" not in free and "named_beyond_random" not in free["rows"][0]  # no null, no calibrated name


def test_equal_change_resumes_from_the_rows_it_kept_without_scoring_them_again(unet, smoke, dirs, monkeypatch):
    import hdisc.posthoc as posthoc

    torch.manual_seed(0)
    net, real = MnistNet().eval(), torch.rand(64, 1, 32, 32) * 2 - 1
    learned, floor = dirs.at_size(0.2), random_set(dirs, smoke.unet.h_shape, 0.5, seed=3)
    args = (unet, learned, {"random": floor}, net, real, smoke.unet.h_shape)
    budget = {"rel": 0.5, "n_interp": 2, "n_train": 2, "n_test": 1, "epochs": 1, "seed": 0}
    kept = []
    whole = score_at_equal_change(*args, **budget, on_row=lambda rows: kept.append([dict(r) for r in rows]))
    assert [len(rows) for rows in kept] == [1, 2, 3]
    assert kept[-1] == [{k: v for k, v in r.items() if k != "named_beyond_random"} for r in whole["rows"]]
    scored = []
    real_score = posthoc.score_directions
    monkeypatch.setattr(posthoc, "score_directions", lambda *a, **k: scored.append(1) or real_score(*a, **k))
    again = []
    resumed = score_at_equal_change(*args, **budget, done=kept[1], on_row=lambda rows: again.append(len(rows)))
    assert resumed == whole and len(scored) == 1 and again == [3]  # only the missing row was scored


def test_a_recorded_name_floor_holds_only_for_its_models_and_noises(tmp_path):
    dm, dirs_file = tmp_path / "dm.pt", tmp_path / "directions.pt"
    dm.write_bytes(b"dm"), dirs_file.write_bytes(b"directions")
    files = {"dm": dm, "directions": dirs_file}
    record = tmp_path / "equal_change.json"
    assert recorded_name_floor(record, files, 16, 0) is None  # no record
    write_record(record, {"n_interp": 16, "seed": 0, "name_floor": 0.62}, files)
    assert recorded_name_floor(record, files, 16, 0) == 0.62
    assert recorded_name_floor(record, files, 4, 0) is None and recorded_name_floor(record, files, 16, 1) is None
    dirs_file.write_bytes(b"directions trained on")  # other directions: another change, another floor
    assert recorded_name_floor(record, files, 16, 0) is None
