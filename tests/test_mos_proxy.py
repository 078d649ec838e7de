import numpy as np
import torch

from hdisc.direction_set import strengths
from hdisc.mos_proxy import Thresholds, calibrate, direction_stats, distinct_nameable, passes, per_image, score


def _digit(n: int, seed: int) -> torch.Tensor:
    """n blocky strokes [n, 1, 32, 32] in [-1, 1]: a vertical bar with a random offset."""
    gen = torch.Generator().manual_seed(seed)
    x = -torch.ones(n, 1, 32, 32)
    for i in range(n):
        c = int(torch.randint(10, 20, (), generator=gen))
        x[i, 0, 6:26, c - 2:c + 2] = 1
    return x


def _sweeps(edit, n_dirs=2, N=8, seed=0):
    """Sweeps [K, N, 9, 1, 32, 32]: ``edit(images, s, k, i)`` applied at 9 strengths."""
    svals = strengths(2.0, 9)
    base = _digit(N, seed)
    out = torch.stack([torch.stack([torch.stack([edit(base[i], float(s), k, i) for s in svals]) for i in range(N)])
                       for k in range(n_dirs)])
    return out, svals


class _Net:
    """A stand-in classifier, sure of class 1 for thin ink and of 8 for a lot; its features are
    the ink per column (smooth as a bar widens)."""

    def features(self, x):
        return (x > 0).float().mean((1, 2))

    def head(self, f):
        ink = f.mean(1)
        logits = torch.zeros(len(f), 10)
        logits[torch.arange(len(f)), torch.where(ink < 0.12, 1, 8)] = 20.0
        return logits


def _thicken(img, s, k, i):
    """Widen (s > 0) or narrow (s < 0) the bar by |s| columns on each side: the same in every image."""
    cols = (img[0] > 0).any(0).nonzero().flatten()
    lo, hi = int(cols.min()), int(cols.max())
    w = int(round(s))
    out = -torch.ones_like(img)
    out[0, 6:26, max(lo - w, 0):min(hi + w, 31) + 1] = 1 if hi + w >= lo - w else -1
    return out


def _noise(img, s, k, i):
    """A fixed random pattern per (direction, image), scaled by s: nothing alike across images."""
    gen = torch.Generator().manual_seed(1000 * k + i)
    return (img + 0.3 * s * torch.randn(img.shape, generator=gen)).clamp(-1, 1)


def test_a_consistent_stroke_edit_reads_consistent_and_named_and_noise_does_not():
    th = Thresholds(consistency=0.5, agreement=0.8, name_floor=0.6)
    sweeps, svals = _sweeps(_thicken)
    record, stats = score(sweeps, svals, _Net(), th, draws=50)
    assert min(record["consistency"]) > 0.9 and min(record["agreement"]) == 1.0
    assert min(record["name_rho"]) > 0.9 and min(record["jump"]) <= 0.5
    assert record["mos_proxy"] == 1.0 and record["distinct_nameable"] == 1  # two alike directions: one effect
    noisy, _ = _sweeps(_noise)
    rec_noise, _ = score(noisy, svals, _Net(), th, draws=50)
    assert max(rec_noise["consistency"]) < 0.5 and rec_noise["mos_proxy"] == 0.0
    assert rec_noise["interval"] == [0.0, 0.0]


def test_calibration_puts_the_thresholds_at_the_random_quantile():
    stats = {"consistency": np.linspace(0, 1, 11), "agreement": np.linspace(0.5, 1, 11),
             "name_rho": np.linspace(0, 0.5, 11)}
    th = calibrate(stats, q=0.9)
    assert (th.consistency, th.agreement, th.name_floor) == (0.9, 0.95, 0.45)


def _stats(**over):
    K = 3
    base = {"realism": np.ones(K), "jump": np.full(K, 0.3), "consistency": np.full(K, 0.8),
            "agreement": np.ones(K), "name_rho": np.full(K, 0.9), "target_share": np.zeros(K),
            "changed_share": np.zeros(K), "mean_change": np.eye(K)}
    return base | over


def test_each_criterion_can_fail_a_direction_and_a_class_target_names_one():
    th = Thresholds(consistency=0.5, agreement=0.8, name_floor=0.6)
    assert passes(_stats(), th).all()
    for key, bad in (("realism", 0.5), ("jump", 0.9), ("consistency", 0.1), ("agreement", 0.5), ("name_rho", 0.1)):
        v = _stats()[key].copy()
        v[1] = bad
        assert passes(_stats(**{key: v}), th).tolist() == [True, False, True], key
    # no stroke name, but every changed digit turns into the same class: "turns into a 7"
    unnamed = _stats(name_rho=np.zeros(3), target_share=np.array([1.0, 1.0, 0.3]),
                     changed_share=np.array([0.8, 0.2, 0.9]))
    assert passes(unnamed, th).tolist() == [True, False, False]


def test_distinct_nameable_links_alike_effects_transitively():
    v = np.array([[1.0, 0, 0], [0.8, 0.6, 0], [0.3, 0.95, 0], [0, 0, 1]])
    stats = {"mean_change": v}
    assert distinct_nameable(stats, np.array([True, True, True, True])) == 2
    assert distinct_nameable(stats, np.array([True, False, True, True])) == 3
    assert distinct_nameable(stats, np.zeros(4, dtype=bool)) == 0


def test_a_bootstrap_draw_never_pairs_an_image_with_itself():
    sweeps, svals = _sweeps(_noise, n_dirs=1, N=4)
    from hdisc.mos_proxy import semantic

    per = per_image(semantic(sweeps, _Net(), svals), svals)
    same = direction_stats(per, np.array([0, 0, 0, 0]))  # one image four times: no pair of two images
    assert np.isnan(same["consistency"]).all()
    assert direction_stats(per)["consistency"].shape == (1,)


def test_kappa_of_human_marks_against_the_proxy():
    from hdisc.mos_proxy import kappa

    human = {"0": 1.0, "1": 0.0, "2": 0.67, "3": 0.0}
    assert kappa(human, [0, 2], 4) == 1.0  # the same verdicts
    assert kappa(human, [1, 3], 4) == -1.0  # the opposite ones
    assert kappa({"0": 1.0}, [0], 4) is None  # one marked direction says nothing


def test_rca_mos_takes_the_learned_and_random_rows_of_a_proxy_record():
    from hdisc.mos_proxy import from_record

    row = {"mos_proxy": 0.25, "interval": [0.1, 0.4], "distinct_nameable": 3, "passing": [1, 5]}
    record = {"n_noises": 32, "command": "python research/mos_proxy.py",
              "rows": [{"method": "learned, as trained", **row},
                       {"method": "random", **row, "mos_proxy": 0.03, "interval": [0.0, 0.06]}]}
    out = from_record(record)
    assert out["mos_proxy"] == 0.25 and out["mos_proxy_random"] == 0.03 and out["distinct_nameable"] == 3
    assert out["mos_proxy_random_interval"] == [0.0, 0.06] and out["mos_proxy_passing"] == [1, 5]
