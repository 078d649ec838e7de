import pytest
import torch

from hdisc.shapes import FACTORS, RANGES, SHAPES
from hdisc.truth import changes, dci, gaps, importance, purity, random_floor, rank_correlation, truth_scores

F = len(FACTORS)
SVALS = torch.linspace(-2, 2, 5)
WIDTH = torch.tensor([1.0] + [RANGES[f][1] - RANGES[f][0] for f in FACTORS[1:]])


def _values(slopes: torch.Tensor, N: int = 16, noise: float = 0.0, seed: int = 0) -> torch.Tensor:
    """Factor values [K, N, 5, F]: a base per noise plus slope[k, n, f] * s (continuous factors
    only; the shape stays), with reading noise."""
    gen = torch.Generator().manual_seed(seed)
    K = slopes.shape[0]
    base = torch.tensor([1.0] + [(RANGES[f][0] + RANGES[f][1]) / 2 for f in FACTORS[1:]])
    v = base.expand(K, N, 5, F).clone()
    v[..., 1:] += slopes[:, :, None, 1:] * SVALS.view(1, 1, 5, 1) + noise * torch.randn(K, N, 5, F - 1, generator=gen)
    return v


def test_axis_aligned_directions_score_one_and_inconsistent_ones_zero():
    K = F - 1
    aligned = torch.zeros(K, 16, F)
    for k in range(K):
        aligned[k, :, k + 1] = 0.1 * WIDTH[k + 1]  # 0.2 of the range at s = 2
    out = truth_scores(_values(aligned), SVALS, 2.0, n_boot=20)
    assert out["disentanglement"] == pytest.approx(1.0) and out["completeness"] == pytest.approx(1.0, abs=1e-6)
    assert all(out["gap"][f] == pytest.approx(1.0) for f in FACTORS[1:]) and out["gap"]["shape"] == 0
    assert [out["best_direction"][f] for f in FACTORS[1:]] == list(range(K))
    assert all(out["rank_correlation"][f] == pytest.approx(1.0) for f in FACTORS[1:])
    # the same sizes, one way in half the images and the other way in the rest: nothing moves
    # the same way in every image
    signs = torch.tensor([1.0, -1.0]).repeat(8).view(1, 16, 1)
    assert importance(changes(_values(aligned * signs), 2), SVALS, 2.0).abs().max() < 1e-6


def _random_slopes(seed: int, bias: torch.Tensor) -> torch.Tensor:
    """Slopes of random directions [16, 32, F]: a share consistent over images, the rest per
    image, every factor moved about ``bias`` [F] times its range."""
    gen = torch.Generator().manual_seed(seed)
    per_dir = torch.randn(16, 1, F, generator=gen).expand(16, 32, F) + 0.5 * torch.randn(16, 32, F, generator=gen)
    return 0.02 * per_dir * WIDTH * bias


def test_random_directions_score_near_zero_once_read_against_the_random_floor():
    bias = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 20.0])  # every edit moves the background most
    floor = random_floor(_values(_random_slopes(3, bias), N=32), SVALS, 2.0)
    raw = truth_scores(_values(_random_slopes(4, bias), N=32), SVALS, 2.0, n_boot=20)
    assert raw["disentanglement"] > 0.5  # in range units they all look devoted to the background
    out = truth_scores(_values(_random_slopes(4, bias), N=32), SVALS, 2.0, floor, n_boot=20)
    assert out["disentanglement"] < 0.25 and out["interval"]["disentanglement"][1] < 0.35


def test_one_factor_moved_by_every_direction_is_disentangled_but_not_complete():
    same = torch.zeros(8, 16, F)
    same[:, :, FACTORS.index("x")] = 0.5
    R = importance(changes(_values(same), 2), SVALS, 2.0)
    d = dci(R)
    assert d["disentanglement"] == pytest.approx(1.0) and d["completeness"] == pytest.approx(0.0, abs=1e-6)
    assert gaps(R)[FACTORS.index("x")] == pytest.approx(0.0, abs=1e-6)
    best, share = purity(R)
    assert share[FACTORS.index("x")] == pytest.approx(1.0)


def test_changes_wrap_circular_factors_and_count_shape_flips():
    v = _values(torch.zeros(1, 2, F), N=2)
    o, h = FACTORS.index("orientation"), FACTORS.index("hue")
    v[0, 0, :, 0] = 2  # a square (period 90 degrees)
    v[0, 0, 2, o], v[0, 0, 4, o] = 40.0, -40.0  # 80 degrees apart: -10 around the square's period
    v[0, 0, 2, h], v[0, 0, 4, h] = 0.05, 0.95
    v[0, 0, 4, 0] = 3  # the square became a cross
    d = changes(v, 2)
    width_o, width_h = RANGES["orientation"][1] - RANGES["orientation"][0], RANGES["hue"][1] - RANGES["hue"][0]
    assert d[0, 0, 4, o] * width_o == pytest.approx(10.0) and d[0, 0, 4, h] * width_h == pytest.approx(-0.1)
    assert d[0, 0, 4, 0] == 1 and d[0, 0, 3, 0] == 0


def test_rank_correlation_and_the_missing_zero_strength():
    up = torch.zeros(1, 4, F)
    up[0, :, 1] = 1.0
    rho = rank_correlation(changes(_values(up, N=4), 2), SVALS)
    assert torch.allclose(rho[0, :, 1], torch.ones(4)) and torch.isnan(rho[0, :, 2]).all()
    with pytest.raises(ValueError, match="svals must hold 0"):
        truth_scores(_values(up, N=4), SVALS + 0.5, 2.0)


def test_every_training_free_family_is_built_on_the_chain_of_the_base_set():
    from hdisc.backbone import build_unet, perturb_zero_params
    from hdisc.direction_set import DirectionSet, FixedDirections
    from hdisc.dm import DM
    from hdisc.factors import ShapeNet
    from hdisc.presets import get_preset
    from hdisc.truth import truth_families

    p = get_preset("shapes32", "smoke")
    unet = DM(perturb_zero_params(build_unet(p.unet), 0.05, 0), p.unet).eval().requires_grad_(False)
    base = DirectionSet.of(FixedDirections(torch.zeros(p.discovery.K, *p.unet.h_shape), 0.5), p.discovery, unet)
    sets, x0 = truth_families(unet, base, ShapeNet().eval(), 8, seed=0)
    assert set(sets) == {"PCA (pooled)", "Jacobian (one image)", "supervised (read factors)", "random (floor)",
                         "random (scored)"}
    assert x0.shape == (8, 3, 32, 32) and all(s.steps is base.steps for s in sets.values())
    assert sets["PCA (pooled)"].K == p.discovery.K and sets["random (floor)"].K == p.discovery.K
    assert all(n.split()[0] in SHAPES or n.rstrip("+") in FACTORS for n in sets["supervised (read factors)"].names)
