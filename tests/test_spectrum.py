"""How many directions of h a DM answers: counts on known spectra, and the per-node spectrum
through a small UNet agrees with the one-image Jacobian it is made of."""

import pytest
import torch

from hdisc.baselines import jacobian_directions, random_directions
from hdisc.direction_set import DirectionSet, FixedDirections
from hdisc.sampling import ddim_step
from hdisc.spectrum import answered, answered_share, h_spectrum


def test_answered_counts_the_singular_values_within_a_fraction_of_the_largest():
    sigma = torch.tensor([[2.0, 1.0, 0.6, 0.4, 0.1], [1.0, 0.9, 0.8, 0.7, 0.6]])
    assert answered(sigma, 0.25).tolist() == [3, 5]  # a quarter of 2.0 is 0.5: 2.0, 1.0, 0.6; all of the second
    assert answered(sigma, 0.1).tolist() == [4, 5]
    assert answered(sigma, 1.0).tolist() == [1, 1]
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
            answered(sigma, bad)


def test_h_spectrum_is_the_jacobian_spectrum_at_each_shifted_node(unet):
    steps = unet.steps(4)  # t = 999, 666, 333, 0
    x_T = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    sigma = h_spectrum(unet, x_T, steps, t_stop=400, k=3, iters=4, seed=5)
    assert sigma.shape == (2, 2, 3)  # two images, the nodes t = 999 and 666, three values
    assert (sigma[..., :-1] >= sigma[..., 1:]).all() and (sigma > 0).all()
    with torch.no_grad():
        x1 = ddim_step(unet, x_T[1:], steps, 0, True)  # the second image at the second node
    expected = jacobian_directions(unet, x1, 666, 3, iters=4, seed=6)[1]
    assert torch.allclose(sigma[1, 1], expected, rtol=1e-5)


def test_h_spectrum_refuses_a_chain_with_no_shifted_node(unet):
    steps = unet.steps(4)
    with pytest.raises(ValueError, match="no node of the chain has t > t_stop = 999"):
        h_spectrum(unet, torch.randn(1, 1, 32, 32), steps, t_stop=999, k=2)


def test_a_top_singular_vector_lies_where_the_dm_answers_and_a_random_direction_does_not(unet):
    steps = unet.steps(4)
    x_T = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    top = jacobian_directions(unet, x_T, 999, 2, iters=8, seed=0)[0]  # at the first node, t = 999
    table = torch.stack([top[0], random_directions(1, tuple(top.shape[1:]), seed=3)[0]])
    dirs = DirectionSet(FixedDirections(table, rel=0.1), 2, 1.0, steps, t_stop=400)
    share = answered_share(unet, dirs, x_T, r=2, iters=8)
    assert share.shape == (2, 2)  # two directions, the nodes t = 999 and 666
    assert share[0, 0] > 0.99  # the top singular vector is inside the top-2 span it came from
    assert share[1, 0] < 20 * 2 / top[0].numel()  # a random one: about r / dim(h)
    assert ((0 <= share) & (share <= 1 + 1e-5)).all()
