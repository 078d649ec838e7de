import pytest
import torch

from hdisc.backbone import asymmetric, capture_h, load_dm, shift_h
from hdisc.data import load_mnist
from hdisc.files import project_path
from hdisc.sampling import Shifted, ddim_update, generate, invert_ddim, predict_x0, sample_ddim
from hdisc.schedule import DEFAULT, ddim_steps


def test_schedule_matches_linear_betas():
    abar = DEFAULT.alphas_cumprod()
    assert abar.shape == (1000,) and abar.dtype == torch.float64
    assert abar[0] == pytest.approx(1 - 1e-4)
    assert abar[-1] == pytest.approx(torch.prod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)))


def test_ddim_steps_descend_and_end_at_one():
    s = ddim_steps(20)
    assert len(s) == 20 and s.t[0] == 999 and s.t[-1] == 0
    assert (s.t[:-1] > s.t[1:]).all()
    assert s.abar_prev[-1] == 1.0 and torch.equal(s.abar_prev[:-1], s.abar[1:])


@pytest.mark.parametrize("M", [0, 1001])
def test_ddim_steps_rejects_bad_m(M):
    with pytest.raises(ValueError, match="M="):
        ddim_steps(M)


def test_ddim_update_is_its_own_inverse_for_a_fixed_eps():
    x, eps = torch.randn(2, 1, 8, 8, dtype=torch.float64), torch.randn(2, 1, 8, 8, dtype=torch.float64)
    a, b = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    y = ddim_update(x, eps, eps, a, b)
    assert torch.allclose(ddim_update(y, eps, eps, b, a), x, atol=1e-12)
    assert torch.allclose(predict_x0(y, eps, b), predict_x0(x, eps, a), atol=1e-12)


@pytest.mark.parametrize("M", [4, 20])
def test_inversion_then_sampling_is_exact_for_the_ideal_denoiser(M):
    """For data = one point x*, eps(x_t, t) = (x_t - sqrt(abar) x*) / sqrt(1 - abar) exactly,
    so inversion and sampling must undo each other to float64 rounding at any M."""
    x_star = torch.rand(2, 1, 8, 8, dtype=torch.float64) * 2 - 1
    abar_all = DEFAULT.alphas_cumprod()

    def ideal(x, t):
        a = abar_all[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * x_star) / (1 - a).sqrt()

    steps = ddim_steps(M)
    xT = invert_ddim(ideal, x_star, steps, disable=True)
    assert torch.allclose(sample_ddim(ideal, xT, steps, clip=False, disable=True), x_star, atol=1e-8)


def test_inversion_then_sampling_reconstructs_real_digits_with_the_committed_dm():
    """The paper's 100-step inversion of held-out digits with the committed cpu DM.

    The bound is loose (7.5% of the [-1, 1] range, mean absolute error): the cpu DM is
    small and under-trained, and its inversion is approximate (measured: 0.05-0.1)."""
    unet = load_dm(project_path("models/mnist32-cpu/dm_ema.pt"))
    x0 = load_mnist("test")[0][:2]
    steps = ddim_steps(100)
    with torch.no_grad():
        xT = invert_ddim(unet, x0, steps, disable=True)
        rec = sample_ddim(unet, xT, steps, clip=False, disable=True)
    assert (xT - x0).abs().mean() > 0.1  # it really left the image
    assert (rec - x0).abs().mean() < 0.15


def test_zero_shift_leaves_outputs_unchanged(unet):
    """Bit-identical within one batch; across batch rows only up to float32 rounding: oneDNN's
    convolutions may round a row differently by its place in the batch (measured on one CPU:
    3e-7 on eps, 3e-5 after a 4-step chain whose first step divides by sqrt(abar_999))."""
    x, t = torch.randn(3, 1, 32, 32), torch.tensor([999, 500, 3])
    with torch.no_grad():
        ref = unet(x, t)

        def zero(h, emb):
            return torch.zeros_like(h)

        with shift_h(unet, zero):
            assert torch.equal(unet(x, t), ref)
        with asymmetric(unet, zero):
            both = unet(x, t)
        assert both.shape == (6, 1, 32, 32)
        torch.testing.assert_close(both[:3], both[3:], rtol=0, atol=1e-5)
        assert torch.allclose(both[:3], ref, atol=1e-6)
        steps = ddim_steps(4)
        z = torch.randn(2, 1, 32, 32)
        plain = sample_ddim(unet, z, steps, disable=True)
        shifted = sample_ddim(Shifted(unet, lambda h, emb, t, k: torch.zeros_like(h), torch.zeros(2, dtype=torch.long),
                                      torch.ones(2), t_stop=400), z, steps, disable=True)
        torch.testing.assert_close(plain, shifted, rtol=0, atol=1e-3)


def test_asymmetric_matches_two_separate_passes(unet):
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([800, 800])
    dh = torch.randn(2, 64, 16, 16) * 0.5

    def delta(h, emb):
        return dh

    with torch.no_grad():
        orig = unet(x, t)
        with shift_h(unet, delta):
            shifted = unet(x, t)
        with asymmetric(unet, delta):
            both = unet(x, t)
    assert not torch.allclose(orig, shifted, atol=1e-4)
    assert torch.allclose(both[:2], orig, atol=1e-5)
    assert torch.allclose(both[2:], shifted, atol=1e-5)


def test_hooks_are_removed_after_the_block(unet):
    with capture_h(unet) as hs:
        unet(torch.randn(1, 1, 32, 32), torch.tensor([10]))
    assert len(hs) == 1 and hs[0].shape == (1, 64, 16, 16)
    assert not unet.middle_block._forward_hooks and not unet.input_blocks[1]._forward_pre_hooks


def test_gradients_reach_dh(unet):
    x, t = torch.randn(2, 1, 32, 32), torch.tensor([700, 700])
    dh = torch.zeros(2, 64, 16, 16, requires_grad=True)
    with asymmetric(unet, lambda h, emb: dh):
        shifted = unet(x, t)[2:]
    shifted.square().sum().backward()
    assert dh.grad is not None and dh.grad.abs().sum() > 0


def test_generate_is_seeded(unet):
    steps = ddim_steps(3)
    a = generate(unet, 3, (1, 32, 32), steps, seed=5, disable=True)
    b = generate(unet, 3, (1, 32, 32), steps, seed=5, disable=True)
    c = generate(unet, 3, (1, 32, 32), steps, seed=6, disable=True)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1.0 + 1e-6


@pytest.mark.parametrize("backbone", ["unet", "diffusers_unet"])  # guided-diffusion's one-encoder pass; doubled batch
def test_asymmetric_with_reference_rows_matches_separate_passes(request, backbone):
    unet = request.getfixturevalue(backbone)
    x, t = torch.randn(3, 1, 32, 32), torch.tensor([800, 800, 800])
    dh = torch.randn(2, 64, 16, 16) * 0.5
    with torch.no_grad():
        orig = unet(x, t)
        with shift_h(unet, lambda h, emb: torch.cat([torch.zeros_like(h[:1]), dh])):
            shifted = unet(x, t)
        with asymmetric(unet, lambda h, emb: dh, first=1):
            out = unet(x, t)
    assert out.shape == (5, 1, 32, 32)
    assert torch.allclose(out[:3], orig, atol=1e-5)
    assert torch.allclose(out[3:], shifted[1:], atol=1e-5)
    assert not torch.allclose(shifted[1:], orig[1:], atol=1e-4)
