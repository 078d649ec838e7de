"""Post-hoc RCA: a fresh reconstructor tells apart directions that differ, and not others."""

import torch

from hdisc.baselines import random_directions
from hdisc.direction_set import DirectionSet, FixedDirections
from hdisc.directions import edit_pairs
from hdisc.posthoc import posthoc_rca
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


def test_edit_pairs_of_fixed_directions(unet):
    dirs = DirectionSet(FixedDirections(random_directions(3, (64, 16, 16)), rel=0.5), 3, 2.0, ddim_steps(3), 400)
    x0, xs, k, s = edit_pairs(unet, dirs, n_noise=2, per_noise=3, seed=0, batch=4)
    assert x0.shape == xs.shape == (6, 1, 32, 32) and k.max() < 3 and s.abs().max() <= 2
    assert torch.equal(x0[0], x0[2]) and not torch.equal(x0[0], x0[3])  # one plain sample per noise
    assert (xs - x0).abs().mean() > 0
