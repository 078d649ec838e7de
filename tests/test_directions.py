"""Using trained directions: edits, sweeps, ranking, inversion and the section 5.4 shifts."""

import dataclasses

import pytest
import torch

from hdisc.directions import (
    FixedShift,
    chain_scale,
    change_scores,
    change_similarity,
    compare_shifts,
    direction_ends,
    edit,
    edit_fixed,
    mean_abs_offdiag,
    mean_directions,
    ranked,
    raw_and_shifted,
    realism,
    shifted_steps,
    strengths,
    sweep,
)
from hdisc.discovery import DiscoveryModel
from hdisc.sampling import sample_ddim
from hdisc.schedule import ddim_steps


def test_zero_strength_is_the_plain_sample(smoke, unet, discovery):
    steps, z = ddim_steps(4), torch.randn(3, 1, 32, 32)
    plain = sample_ddim(unet, z, steps, disable=True)
    assert torch.allclose(edit(unet, discovery.shift, z, 1, 0.0, steps, 400), plain, atol=1e-4)


def test_sweep_is_one_edit_per_strength(smoke, unet, discovery):
    steps, z, svals = ddim_steps(4), torch.randn(2, 1, 32, 32), strengths(5.0, 5)
    assert svals.tolist() == [-5.0, -2.5, 0.0, 2.5, 5.0]
    out = sweep(unet, discovery.shift, z, 3, svals, steps, 400)
    assert out.shape == (2, 5, 1, 32, 32)
    one = edit(unet, discovery.shift, z[1:], 3, 2.5, steps, 400)
    assert torch.allclose(out[1, 3], one[0], atol=1e-3)  # batch 10 vs 1: rounding differs by row place
    assert not torch.allclose(out[:, 0], out[:, 4])


def test_rank_scores_every_direction_and_zero_heads_score_zero(smoke, unet, discovery):
    steps, z = ddim_steps(4), torch.randn(2, 1, 32, 32)
    x0, ends = direction_ends(unet, discovery, smoke.discovery, z, steps)
    scores = change_scores(ends - x0[:, None])
    assert scores.shape == (smoke.discovery.K,) and (scores > 0).all()
    x0, ends = direction_ends(unet, DiscoveryModel(smoke.unet, smoke.discovery), smoke.discovery, z, steps)
    assert change_scores(ends - x0[:, None]).max() < 1e-5  # float rounding only


def test_direction_ends_are_the_sweeps_at_plus_minus_S(smoke, unet, discovery):
    steps, z, d = ddim_steps(4), torch.randn(2, 1, 32, 32), smoke.discovery
    x0, ends = direction_ends(unet, discovery, d, z, steps)
    assert x0.shape == (2, 1, 32, 32) and ends.shape == (d.K, 2, 2, 1, 32, 32)
    assert torch.allclose(x0, sample_ddim(unet, z, steps, disable=True), atol=1e-5)
    assert torch.allclose(ends[3], sweep(unet, discovery.shift, z, 3, torch.tensor([-d.S, d.S]), steps, d.t_stop),
                          atol=1e-5)


def test_realism_is_the_discriminators_ratio_capped_at_one():
    def brightness(x: torch.Tensor) -> torch.Tensor:  # a "discriminator" that prefers dark images
        return -10 * x.flatten(1).mean(1)

    x0 = torch.zeros(3, 1, 4, 4)
    ends = torch.stack([torch.zeros(3, 2, 1, 4, 4), torch.ones(3, 2, 1, 4, 4), -torch.ones(3, 2, 1, 4, 4)])
    r = realism(brightness, x0, ends)
    assert r.shape == (3,)
    assert r[0] == 1.0 and r[2] == 1.0  # as real as the samples; more real is capped
    assert torch.allclose(r[1], torch.sigmoid(torch.tensor(-10.0)) / 0.5)


def test_mean_and_global_directions(smoke, unet, discovery):
    steps, z = ddim_steps(4), torch.randn(5, 1, 32, 32)  # t = 999, 666 shifted (t_stop 400)
    table, global_dir = mean_directions(unet, discovery.shift, z, 2, steps, 400)
    assert sorted(table) == [666, 999] and global_dir.shape == smoke.unet.h_shape
    assert torch.allclose(global_dir, (table[666] + table[999]) / 2)
    # with one shifted step (t_stop 700) and identical samples, the mean is the per-sample shift
    same = z[:1].expand(3, -1, -1, -1)
    table1, _ = mean_directions(unet, discovery.shift, same, 2, steps, 700)
    assert list(table1) == [999]
    assert torch.allclose(edit_fixed(unet, table1, same, 1.5, steps, 700),
                          edit(unet, discovery.shift, same, 2, 1.5, steps, 700), atol=1e-4)


def test_fixed_zero_shift_is_plain_ddim(smoke, unet):
    steps, z = ddim_steps(4), torch.randn(2, 1, 32, 32)
    model = FixedShift(unet, torch.zeros(smoke.unet.h_shape), torch.ones(2), 400)
    assert torch.allclose(sample_ddim(model, z, steps, disable=True), sample_ddim(unet, z, steps, disable=True),
                          atol=1e-4)


def test_raw_and_shifted_are_seeded_and_share_noise(smoke, unet, discovery):
    steps = ddim_steps(3)
    raw, shifted = raw_and_shifted(unet, discovery, smoke.discovery, 5, steps, seed=3, batch=2, progress=False)
    again = raw_and_shifted(unet, discovery, smoke.discovery, 5, steps, seed=3, batch=2, progress=False)
    assert raw.shape == shifted.shape == (5, 1, 32, 32)
    assert torch.equal(raw, again[0]) and torch.equal(shifted, again[1])
    z = torch.randn((5, 1, 32, 32), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(raw[:2], sample_ddim(unet, z[:2], steps, disable=True), atol=1e-4)
    assert not torch.allclose(raw, shifted)


def test_ranked_orders_directions_by_change_times_realism(smoke, unet, discovery):
    order, change, real, sim = ranked(unet, discovery, smoke.discovery, 2, seed=1)
    assert sorted(order) == list(range(smoke.discovery.K))
    assert ((real > 0) & (real <= 1)).all()
    scores = change * real
    assert [scores[k].item() for k in order] == sorted(scores.tolist(), reverse=True)
    K = smoke.discovery.K
    assert sim.shape == (K, K) and torch.allclose(sim, sim.T, atol=1e-6)
    assert torch.allclose(sim.diagonal(), torch.ones(K), atol=1e-5)


def test_change_similarity_tells_collapsed_from_distinct_directions():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 3, 2, 1, 8, 8, generator=g)
    collapsed = base * torch.tensor([1.0, -2.0, 0.5])[:, None, None, None, None, None]  # one effect, 3 sizes
    sim = change_similarity(collapsed)
    assert torch.allclose(sim.abs(), torch.ones(3, 3), atol=1e-5) and mean_abs_offdiag(sim) > 0.999
    eye = torch.eye(4).view(4, 1, 1, 1, 2, 2).expand(4, 3, 2, 1, 2, 2)  # four orthogonal effects
    assert torch.allclose(change_similarity(eye), torch.eye(4)) and mean_abs_offdiag(change_similarity(eye)) == 0
    assert torch.allclose(change_scores(collapsed), collapsed.abs().flatten(1).mean(1))


def test_compare_shifts_is_zero_when_the_mean_is_the_per_sample_shift(smoke, unet, discovery):
    steps, z = ddim_steps(4), torch.randn(1, 1, 32, 32)
    same = z.expand(3, -1, -1, -1)
    recon = sample_ddim(unet, same, steps, disable=True)
    row, images = compare_shifts(unet, discovery.shift, same, recon, 2, 1.5, same, steps, 700)
    assert images.shape == (12, 1, 32, 32) and row["k"] == 2 and row["edit_change"] > 0
    assert row["mean_vs_sample"] < 1e-3 and row["global_vs_sample"] < 1e-3


def test_chain_scale_matches_the_number_of_shifted_steps(smoke):
    cfg = dataclasses.replace(smoke.discovery, M=5, t_stop=400)  # t = 999, 749, 500 shifted
    assert shifted_steps(ddim_steps(5), 400) == 3 and chain_scale(ddim_steps(5), cfg) == 1.0
    assert shifted_steps(ddim_steps(100), 400) == 60
    assert chain_scale(ddim_steps(100), cfg) == pytest.approx(3 / 60)
