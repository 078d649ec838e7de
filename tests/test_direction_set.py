"""One type for a set of directions: edits, sweeps, chains and fixed direction tables."""

import dataclasses

import pytest
import torch

from hdisc.baselines import random_directions
from hdisc.direction_set import DirectionSet, FixedDirections, shifted_steps, strengths
from hdisc.sampling import sample_ddim
from hdisc.schedule import ddim_steps


def test_zero_strength_is_the_plain_sample(unet, dirs):
    z = torch.randn(3, 1, 32, 32)
    assert torch.allclose(dirs.edit(unet, z, 1, 0.0), dirs.plain(unet, z), atol=1e-4)
    assert torch.allclose(dirs.plain(unet, z), sample_ddim(unet, z, ddim_steps(4), disable=True))


def test_sweep_is_one_edit_per_strength(unet, dirs):
    z, svals = torch.randn(2, 1, 32, 32), strengths(5.0, 5)
    out = dirs.sweep(unet, z, 3, svals)
    assert out.shape == (2, 5, 1, 32, 32)
    one = dirs.edit(unet, z[1:], 3, 2.5)
    assert torch.allclose(out[1, 3], one[0], atol=1e-3)  # batch 10 vs 1: rounding differs by row place
    assert not torch.allclose(out[:, 0], out[:, 4])
    every = dirs.sweeps(unet, z, svals, progress=False)
    assert every.shape == (dirs.K, 2, 5, 1, 32, 32) and torch.allclose(every[3], out, atol=1e-5)


def test_another_chain_rescales_the_strength_by_its_shifted_steps(smoke, discovery, unet):
    cfg = dataclasses.replace(smoke.discovery, M=5, t_stop=400)  # t = 999, 749, 500 shifted
    dirs = DirectionSet.of(discovery.shift, cfg, unet)
    assert shifted_steps(dirs.steps, 400) == 3 and dirs.scale == 1.0
    long = dirs.on(ddim_steps(100))
    assert shifted_steps(long.steps, 400) == 60 and long.scale == pytest.approx(3 / 60)
    assert long.on(ddim_steps(5)).scale == pytest.approx(1.0)  # and back
    assert torch.equal(long.model(None, torch.tensor([0]), torch.tensor([2.0])).scale.flatten(),
                       torch.tensor([2.0 * 3 / 60]))


def test_an_edit_on_another_chain_is_the_edit_with_a_rescaled_strength(unet, dirs):
    z, long = torch.randn(1, 1, 32, 32), dirs.on(ddim_steps(10))
    plain_scale = dataclasses.replace(long, scale=1.0)
    assert torch.allclose(long.edit(unet, z, 2, 4.0), plain_scale.edit(unet, z, 2, 4.0 * long.scale), atol=1e-5)


def test_fixed_directions_have_the_asked_size_relative_to_h():
    shift = FixedDirections(random_directions(3, (64, 16, 16)), rel=0.5)
    h = torch.randn(4, 64, 16, 16) * 3
    dh = shift(h, None, torch.full((4,), 999), torch.tensor([0, 1, 2, 0]))
    ratio = dh.pow(2).mean((1, 2, 3)).sqrt() / h.pow(2).mean((1, 2, 3)).sqrt()
    assert torch.allclose(ratio, torch.full((4,), 0.5), atol=1e-5) and shift.K == 3


def test_per_timestep_directions_pick_their_timestep_and_refuse_others():
    a, b = torch.ones(2, 4, 2, 2), -torch.ones(2, 4, 2, 2) * 3
    shift = FixedDirections({999: a, 666: b})
    h = torch.zeros(2, 4, 2, 2)
    dh = shift(h, None, torch.tensor([666, 999]), torch.tensor([1, 0]))
    assert torch.equal(dh[0], b[1]) and torch.equal(dh[1], a[0])  # absolute: the table's entries themselves
    with pytest.raises(ValueError, match=r"timesteps \[999, 666\], not for \[500\]"):
        shift(h, None, torch.tensor([500, 999]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        FixedDirections(torch.full((1, 4, 2, 2), float("nan")))


def test_zero_fixed_directions_are_plain_ddim(smoke, unet, dirs):
    zero = dirs.with_shift(FixedDirections(torch.zeros(1, *smoke.unet.h_shape)), K=1)
    z = torch.randn(2, 1, 32, 32)
    assert torch.allclose(zero.edit(unet, z, 0, 5.0), dirs.plain(unet, z), atol=1e-4)


def test_labels_default_to_indices(dirs):
    assert dirs.label(2) == "2"
    named = dirs.with_shift(dirs.shift, names=("a", "b", "c", "d"))
    assert named.label(2) == "c" and named.K == dirs.K
    table = dirs.with_shift(FixedDirections(torch.zeros(3, 64, 16, 16)))
    assert table.K == 3  # the shift's own K
