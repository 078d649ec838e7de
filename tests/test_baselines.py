"""Directions found without training: exact against dense linear algebra on small cases."""

import pytest
import torch

from hdisc.baselines import (
    collect_h,
    jacobian_directions,
    matched_size,
    pca_directions,
    principal_components,
    project_out,
    random_set,
    reached,
    supervised_directions,
    top_singular,
)
from hdisc.direction_set import DirectionSet, FixedDirections
from hdisc.schedule import ddim_steps


def _aligned(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|cosine| between matching rows of a and b [k, d]."""
    return torch.nn.functional.cosine_similarity(a.flatten(1).double(), b.flatten(1).double(), dim=1).abs()


def test_pca_matches_an_exact_svd():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=gen) @ torch.diag(torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5])) + 7
    axes, frac = principal_components(x, 3)
    _, s, vh = torch.linalg.svd(x.double() - x.double().mean(0), full_matrices=False)
    assert _aligned(axes, vh[:3]).min() > 1 - 1e-6
    assert torch.allclose(frac.double(), s.pow(2) / s.pow(2).sum(), atol=1e-6) and abs(frac.sum() - 1) < 1e-5


def test_top_singular_vectors_of_a_nonlinear_map_match_its_full_jacobian():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 20), torch.nn.Tanh(), torch.nn.Linear(20, 9)).double()
    x0 = torch.randn(12, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(net, x0)  # [9, 12], only for the test
    _, s, vh = torch.linalg.svd(jac)

    def f(v):
        return net(x0 + v.double())

    def jvp(v):
        return torch.stack([torch.func.jvp(f, (torch.zeros(12, dtype=torch.float64),), (r.double(),))[1] for r in v])

    def vjp(u):
        return torch.stack([torch.func.vjp(f, torch.zeros(12, dtype=torch.float64))[1](r.double())[0] for r in u])

    v, sigma = top_singular(jvp, vjp, 12, 3, iters=60, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(sigma.double(), s[:3], rtol=1e-4)
    assert _aligned(v, vh[:3]).min() > 0.999


def test_jacobian_directions_through_the_unet(unet):
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    v, sigma = jacobian_directions(unet, x, 999, 2, iters=3)
    assert v.shape == (2, 64, 16, 16) and sigma[0] >= sigma[1] > 0
    assert torch.allclose(v.flatten(1) @ v.flatten(1).T, torch.eye(2), atol=1e-4)
    # no autograd graph back to the UNet's weights: chained over the iterations it held 17 GB on the cpu model
    assert any(p.requires_grad for p in unet.parameters())
    assert v.grad_fn is None and sigma.grad_fn is None and not v.requires_grad


def test_projection_leaves_a_direction_orthogonal_to_the_removed_one():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, 4, generator=gen), torch.randn(3, 4, 4, generator=gen)
    p = project_out(a, b)
    assert abs((p.flatten() @ b.flatten()).item()) < 1e-5 and torch.allclose(project_out(p, b), p, atol=1e-6)


def test_supervised_directions_point_from_one_group_to_the_other():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(40, 8, 1, 1, generator=gen) * 0.1
    labels = torch.arange(40) % 3
    h[:, 0, 0, 0] += labels.float()  # the digit moves channel 0
    measure = torch.randn(40, generator=gen)
    h[:, 1, 0, 0] += measure  # the stroke measure moves channel 1
    dirs, names = supervised_directions(h, labels, {"thickness": measure})
    assert names == ["digit 0", "digit 1", "digit 2", "thickness+"]
    assert dirs[2, 0, 0, 0] > 0.9 > -0.9 > dirs[0, 0, 0, 0]
    thick = dirs[3].flatten()
    assert thick[1] > 0.5  # points to thicker strokes
    for c in range(3):  # and has no component along any class direction
        assert abs((thick @ dirs[c].flatten()).item()) < 1e-5


def test_pca_of_h_along_the_chain(unet, smoke):
    z = torch.randn(6, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    hs, x0 = collect_h(unet, z, ddim_steps(4), t_stop=400, batch=4)
    assert x0.shape == (6, 1, 32, 32)
    assert sorted(hs) == [666, 999] and hs[999].shape == (6, 64, 16, 16)
    dirs, spectra = pca_directions(hs, 2)
    assert dirs.shape == (2, 64, 16, 16) and set(spectra["per_t"]) == {666, 999}
    assert abs(spectra["pooled"].sum().item() - 1) < 1e-4


def test_the_random_floor_has_the_learned_sets_chain_and_the_asked_size(smoke, dirs):
    floor = random_set(dirs, smoke.unet.h_shape, 0.1, seed=3)
    assert (floor.K, floor.steps, floor.t_stop, floor.label(2)) == (dirs.K, dirs.steps, dirs.t_stop, "R2")
    h = torch.randn(2, *smoke.unet.h_shape) * 2
    dh = floor.shift(h, None, torch.full((2,), 999), torch.tensor([0, 3]))
    ratio = dh.pow(2).mean((1, 2, 3)).sqrt() / h.pow(2).mean((1, 2, 3)).sqrt()
    assert torch.allclose(ratio, torch.full((2,), 0.1), atol=1e-6)



def _rel_size(shift, h: torch.Tensor, k: list[int]) -> torch.Tensor:
    dh = shift(h, torch.zeros(len(h), shift.emb[1].in_features) if hasattr(shift, "emb") else None,
               torch.full((len(h),), 999), torch.tensor(k))
    return dh.pow(2).mean((1, 2, 3)).sqrt() / h.pow(2).mean((1, 2, 3)).sqrt()


def test_at_size_gives_learned_and_fixed_directions_one_step_size(smoke, dirs):
    h = torch.randn(2, *smoke.unet.h_shape) * 3
    learned = dirs.at_size(0.25)
    assert torch.allclose(_rel_size(learned.shift, h, [0, 3]), torch.full((2,), 0.25), atol=1e-5)
    assert dirs.shift.norm == smoke.discovery.shift_norm  # the original is left as it was
    floor = random_set(dirs, smoke.unet.h_shape, 0.1, seed=3).at_size(0.4)
    assert torch.allclose(_rel_size(floor.shift, h, [1, 2]), torch.full((2,), 0.4), atol=1e-6)
    assert (learned.steps, learned.K, floor.label(1)) == (dirs.steps, dirs.K, "R1")
    computed = torch.randn(2, *smoke.unet.h_shape, requires_grad=True) * 2  # a table with a graph, as the Jacobian's
    assert dirs.with_shift(FixedDirections(computed, 0.1)).at_size(0.2).shift.table.grad_fn is None
    with pytest.raises(ValueError, match="rel must be > 0"):
        dirs.at_size(0.0)
    with pytest.raises(TypeError, match="FixedDirections without rel"):
        dirs.with_shift(FixedDirections(torch.randn(2, *smoke.unet.h_shape))).at_size(0.1)


def test_matched_size_finds_the_step_that_moves_the_image_as_far_as_asked(unet, smoke, dirs):
    floor = random_set(dirs, smoke.unet.h_shape, 0.5, seed=3)

    def change(size: float) -> float:  # the evaluation's median change at S/2, on matched_size's noises
        z = torch.randn((2, 1, 32, 32), generator=torch.Generator().manual_seed(5))
        moved = floor.at_size(size)
        base = floor.plain(unet, z)
        return torch.stack([(moved.edit(unet, z, k, floor.S / 2) - base).abs().flatten(1).mean(1).mean()
                            for k in range(floor.K)]).median().item()

    target = change(0.3)
    size, reached = matched_size(unet, floor, target, 1.0, n=2, seed=5, iters=3)
    assert reached == pytest.approx(change(size), rel=1e-5)  # what it reports is what that size does
    assert reached == pytest.approx(target, rel=0.05) and size == pytest.approx(0.3, rel=0.2)
    with pytest.raises(ValueError, match="target change must be > 0"):
        matched_size(unet, floor, 0.0, 1.0)


def test_matched_size_stops_once_within_tolerance_and_reports_a_target_it_cannot_reach(unet, smoke, dirs,
                                                                                       monkeypatch):
    floor = random_set(dirs, smoke.unet.h_shape, 0.5, seed=3)
    sizes = []
    real_at_size = DirectionSet.at_size
    monkeypatch.setattr(DirectionSet, "at_size", lambda self, rel: sizes.append(rel) or real_at_size(self, rel))
    _, start = matched_size(unet, floor, 1.0, 0.3, n=2, seed=5, iters=0)
    sizes.clear()
    size, change = matched_size(unet, floor, start, 0.3, n=2, seed=5)
    assert sizes == [0.3] and size == 0.3 and reached(change, start)  # already there: one measurement
    sizes.clear()
    size, change = matched_size(unet, floor, 50.0, 0.3, n=2, seed=5, iters=2)  # pixels in [-1, 1]: out of reach
    assert len(sizes) == 3 and not reached(change, 50.0)
