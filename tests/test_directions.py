"""Using a set of directions: ranking, the section 5.4 shifts, raw and shifted samples."""

import dataclasses

import torch

from hdisc.backbone import save_unet
from hdisc.direction_set import DirectionSet, strengths
from hdisc.directions import (
    alike_groups,
    change_scores,
    compare_shifts,
    direction_ends,
    distinct_effects,
    edit_pairs,
    mean_abs_offdiag,
    mean_directions,
    ranked,
    ranked_order,
    realism,
)
from hdisc.discovery import DiscoveryModel, change_similarity
from hdisc.presets import get_preset
from hdisc.runs import write_record
from hdisc.sampling import sample_ddim
from hdisc.schedule import Schedule


def test_rank_scores_every_direction_and_zero_heads_score_zero(smoke, unet, dirs):
    z = torch.randn(2, 1, 32, 32)
    x0, ends = direction_ends(unet, dirs, z)
    scores = change_scores(ends - x0[:, None])
    assert scores.shape == (smoke.discovery.K,) and (scores > 0).all()
    zero = dirs.with_shift(DiscoveryModel(smoke.unet, smoke.discovery).shift)
    x0, ends = direction_ends(unet, zero, z)
    assert change_scores(ends - x0[:, None]).max() < 1e-5  # float rounding only


def test_direction_ends_are_the_sweeps_at_plus_minus_S(smoke, unet, dirs):
    z = torch.randn(2, 1, 32, 32)
    x0, ends = direction_ends(unet, dirs, z)
    assert x0.shape == (2, 1, 32, 32) and ends.shape == (dirs.K, 2, 2, 1, 32, 32)
    assert torch.allclose(x0, sample_ddim(unet, z, dirs.steps, disable=True), atol=1e-5)
    assert torch.allclose(ends[3], dirs.sweep(unet, z, 3, torch.tensor([-dirs.S, dirs.S])), atol=1e-5)


def test_realism_is_the_discriminators_ratio_capped_at_one():
    def brightness(x: torch.Tensor) -> torch.Tensor:  # a "discriminator" that prefers dark images
        return -10 * x.flatten(1).mean(1)

    x0 = torch.zeros(3, 1, 4, 4)
    ends = torch.stack([torch.zeros(3, 2, 1, 4, 4), torch.ones(3, 2, 1, 4, 4), -torch.ones(3, 2, 1, 4, 4)])
    r = realism(brightness, x0, ends)
    assert r.shape == (3,)
    assert r[0] == 1.0 and r[2] == 1.0  # as real as the samples; more real is capped
    assert torch.allclose(r[1], torch.sigmoid(torch.tensor(-10.0)) / 0.5)


def test_mean_and_global_directions(smoke, unet, dirs):
    z = torch.randn(5, 1, 32, 32)  # t = 999, 666 shifted (t_stop 400)
    per_t, global_dir = mean_directions(unet, dirs, z, 2)
    assert per_t.timesteps.tolist() == [999, 666] and per_t.table.shape == (2, 1, *smoke.unet.h_shape)
    assert per_t.K == global_dir.K == 1 and global_dir.table.shape == (1, 1, *smoke.unet.h_shape)
    assert torch.allclose(global_dir.table[0], per_t.table.mean(0))
    # with one shifted step (t_stop 700) and identical samples, the mean is the per-sample shift
    late = dataclasses.replace(dirs, t_stop=700)
    same = z[:1].expand(3, -1, -1, -1)
    per_t1, _ = mean_directions(unet, late, same, 2)
    assert per_t1.timesteps.tolist() == [999]
    assert torch.allclose(late.with_shift(per_t1, K=1).edit(unet, same, 0, 1.5), late.edit(unet, same, 2, 1.5),
                          atol=1e-4)


def test_raw_and_shifted_are_seeded_and_share_noise(smoke, unet, discovery):
    d = dataclasses.replace(smoke.discovery, M=3)
    dirs = DirectionSet.of(discovery.shift, d, unet)
    raw, shifted, _, _ = edit_pairs(unet, dirs, 5, 1, seed=3, batch=2, progress=False)
    again = edit_pairs(unet, dirs, 5, 1, seed=3, batch=2, progress=False)
    assert raw.shape == shifted.shape == (5, 1, 32, 32)
    assert torch.equal(raw, again[0]) and torch.equal(shifted, again[1])
    z = torch.randn((5, 1, 32, 32), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(raw[:2], sample_ddim(unet, z[:2], dirs.steps, disable=True), atol=1e-4)
    assert not torch.allclose(raw, shifted)


def test_ranked_orders_directions_by_change_times_realism(smoke, unet, discovery, dirs):
    order, change, real, sim, by_sign = ranked(unet, dirs, discovery.discriminator, 2, seed=1)
    assert sorted(order) == list(range(smoke.discovery.K))
    assert ((real > 0) & (real <= 1)).all()
    scores = change * real
    assert [scores[k].item() for k in order] == sorted(scores.tolist(), reverse=True)
    K = smoke.discovery.K
    assert sim.shape == (K, K) and torch.allclose(sim, sim.T, atol=1e-6)
    assert torch.allclose(sim.diagonal(), torch.ones(K), atol=1e-5)
    assert by_sign.shape == (2, K, K) and torch.allclose(by_sign.mean(0), sim, atol=1e-6)


def test_ranked_order_reads_a_record_of_the_same_files_and_ranks_otherwise(tmp_path, unet, discovery, dirs):
    dm = tmp_path / "dm.pt"
    save_unet(unet.net, get_preset("mnist32", "smoke").unet, dm)
    files = {"dm": dm, "directions": None}
    order = ranked(unet, dirs, discovery.discriminator, 2, seed=1).order
    record = tmp_path / "directions.json"
    assert ranked_order(record, files, unet, dirs, discovery.discriminator, 2, seed=1) == order  # no record: ranked
    recorded = order[::-1]  # a record that ranked these files on the same noises is read, not recomputed
    write_record(record, {"ranking_order": recorded, "n_rank": 2, "seed": 1}, files)
    assert ranked_order(record, files, unet, dirs, discovery.discriminator, 2, seed=1) == recorded
    for n, seed in ((3, 1), (2, 0)):  # other noises: ranked again
        assert ranked_order(record, files, unet, dirs, discovery.discriminator, n, seed=seed) == \
            ranked(unet, dirs, discovery.discriminator, n, seed=seed).order
    other = tmp_path / "other.pt"  # another DM file (here: another schedule): ranked again
    save_unet(unet.net, get_preset("mnist32", "smoke").unet, other, Schedule(T=500))
    assert ranked_order(record, {"dm": other, "directions": None}, unet, dirs, discovery.discriminator, 2,
                        seed=1) == order


def test_change_similarity_tells_collapsed_from_distinct_directions():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 3, 2, 1, 8, 8, generator=g)
    collapsed = base * torch.tensor([1.0, -2.0, 0.5])[:, None, None, None, None, None]  # one effect, 3 sizes
    sim = change_similarity(collapsed)
    assert torch.allclose(sim.abs(), torch.ones(3, 3), atol=1e-5) and mean_abs_offdiag(sim) > 0.999
    eye = torch.eye(4).view(4, 1, 1, 1, 2, 2).expand(4, 3, 2, 1, 2, 2)  # four orthogonal effects
    assert torch.allclose(change_similarity(eye), torch.eye(4)) and mean_abs_offdiag(change_similarity(eye)) == 0
    assert torch.allclose(change_scores(collapsed), collapsed.abs().flatten(1).mean(1))


def test_compare_shifts_is_zero_when_the_mean_is_the_per_sample_shift(unet, dirs):
    late = dataclasses.replace(dirs, t_stop=700)
    same = torch.randn(1, 1, 32, 32).expand(3, -1, -1, -1)
    recon = sample_ddim(unet, same, late.steps, disable=True)
    row, images = compare_shifts(unet, late, same, recon, 2, 1.5, same)
    assert images.shape == (12, 1, 32, 32) and row["k"] == 2 and row["edit_change"] > 0
    assert row["mean_vs_sample"] < 1e-3 and row["global_vs_sample"] < 1e-3


def test_strengths_are_uniform_in_the_range():
    assert strengths(5.0, 5).tolist() == [-5.0, -2.5, 0.0, 2.5, 5.0]


def test_alike_groups_links_directions_through_strong_similarity_of_either_sign():
    sim = torch.eye(6)
    sim[0, 3] = sim[3, 0] = 0.9  # 0 ~ 3
    sim[3, 5] = sim[5, 3] = -0.75  # 3 ~ 5 with opposite sign: still one effect
    sim[1, 2] = sim[2, 1] = 0.69  # below the threshold
    sim[2, 4] = sim[4, 2] = 0.7  # at it
    assert alike_groups(sim, 0.7) == [[0, 3, 5], [2, 4]]
    assert alike_groups(torch.eye(4)) == []
    assert distinct_effects([[0, 3, 5], [2, 4]], 6) == 3 and distinct_effects([], 4) == 4


def test_an_unsigned_direction_is_alike_a_signed_one_only_when_the_signs_are_kept_apart():
    a = torch.randn(1, 3, 1, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    unsigned, signed = torch.cat([a, a], dim=2), torch.cat([a, -a], dim=2)  # [1, B, 2 signs, C, H, W]
    changes = torch.cat([unsigned, signed])  # both do a at +s; at -s one does a, the other -a
    averaged, apart = change_similarity(changes), change_similarity(changes, by_sign=True)
    assert abs(averaged[0, 1]) < 1e-6  # the +s and -s terms cancel: "distinct"
    assert apart.shape == (2, 2, 2) and torch.allclose(apart[:, 0, 1], torch.tensor([1.0, -1.0]), atol=1e-5)
    assert torch.allclose(apart.mean(0), averaged, atol=1e-6)
