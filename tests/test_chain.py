import copy
import dataclasses
import math

import pytest
import torch

from hdisc.chain import backprop_chain, check_budget, parse_budget, record_chain, resolve_budget, run_chain
from hdisc.discovery import (
    DiscoveryModel,
    Reconstructor,
    discovery_step,
    effect_overlap,
    effect_similarity,
    make_optimizers,
    mean_square_offdiag,
)
from hdisc.precision import PRECISIONS, compute_in
from hdisc.presets import DATASETS, departures, get_preset
from hdisc.sampling import Shifted, ddim_step, sample_ddim
from hdisc.schedule import ddim_steps, shifted_steps


def _grads(module):
    return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def test_chain_backprop_matches_finite_differences_in_float64():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 6, dtype=torch.float64)
    frozen = torch.nn.Linear(6, 6, dtype=torch.float64).requires_grad_(False)

    def step(x, i):  # trainable only in the first two steps, like the shifting interval
        y = x + 0.3 * torch.tanh(frozen(x))
        return y + 0.5 * torch.tanh(lin(y)) * (i + 1) if i < 2 else y

    def loss_of(x):
        return (x ** 3).sum()

    z = torch.randn(3, 6, dtype=torch.float64)
    tape = record_chain(step, z, 5)
    x_n = tape.nodes[-1].requires_grad_(True)
    loss_of(x_n).backward()
    backprop_chain(step, tape, x_n.grad)
    analytic = lin.weight.grad.clone()

    numeric = torch.zeros_like(analytic)
    eps = 1e-6
    with torch.no_grad():
        for idx in range(analytic.numel()):
            w = lin.weight.view(-1)
            w[idx] += eps
            up = loss_of(run_chain(step, z, 5))
            w[idx] -= 2 * eps
            down = loss_of(run_chain(step, z, 5))
            w[idx] += eps
            numeric.view(-1)[idx] = (up - down) / (2 * eps)
    assert torch.allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("budget", [0, 1, math.inf])
def test_chain_input_gradient_matches_autograd(budget):
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 4, dtype=torch.float64)

    def step(x, i):
        return torch.sin(lin(x)) + x

    z = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 4, dtype=torch.float64)
    run_chain(step, z, 4).backward(g)
    vanilla = lin.weight.grad.clone()
    lin.zero_grad(set_to_none=True)
    tape = record_chain(step, z.detach(), 4, budget, input_grad=True)
    gz = backprop_chain(step, tape, g, input_grad=True)
    assert torch.equal(gz, z.grad) and torch.equal(lin.weight.grad, vanilla)


def _counting_chain(n=6):
    """A chain whose steps each save one known tensor: [16, 16] float64 (2,048 bytes) from tanh,
    and count how often they run."""
    lin = torch.nn.Linear(16, 16, bias=False, dtype=torch.float64)
    calls = []

    def step(x, i):
        calls.append(i)
        return torch.tanh(x @ lin.weight) + x

    return lin, step, calls


@pytest.mark.parametrize("kept", [0, 3, 6])
def test_a_budget_keeps_the_last_steps_that_fit_and_recomputes_only_the_others(kept):
    lin, step, calls = _counting_chain()
    z = torch.randn(16, 16, dtype=torch.float64)
    g = torch.randn(16, 16, dtype=torch.float64)
    run_chain(step, z, 6).backward(g)
    vanilla = lin.weight.grad.clone()
    lin.zero_grad(set_to_none=True)
    probe = record_chain(step, z, 1, math.inf)  # what one step's graph holds
    per_step = probe.kept_bytes
    assert per_step > 0
    calls.clear()
    tape = record_chain(step, z, 6, budget=kept * per_step + per_step // 2)  # room for `kept` and a half
    assert sorted(tape.graphs) == list(range(6 - kept, 6)) and tape.kept_bytes <= kept * per_step + per_step // 2
    assert tape.kept_bytes == kept * per_step
    backprop_chain(step, tape, g)
    assert calls == list(range(6)) + list(reversed(range(6 - kept)))  # one forward each; recomputes the rest
    assert torch.equal(lin.weight.grad, vanilla) and not tape.graphs  # every kept graph was used and freed


def test_an_unlimited_budget_records_what_vanilla_computes():
    lin, step, calls = _counting_chain()
    z = torch.randn(16, 16, dtype=torch.float64)
    tape = record_chain(step, z, 6, math.inf)
    assert len(tape.graphs) == 6 and torch.equal(tape.nodes[-1], run_chain(step, z, 6).detach())


@pytest.mark.parametrize("bad", [-1, float("nan"), "lots", True, None])
def test_a_bad_budget_is_refused_naming_the_valid_values(bad):
    with pytest.raises(ValueError, match="chain budget=.*valid a number of bytes >= 0.*'auto'"):
        check_budget(bad)


def test_budget_auto_and_the_command_line_form():
    assert 0 < resolve_budget("auto", "cpu") and resolve_budget(0, "cpu") == 0
    assert parse_budget("auto") == "auto" and parse_budget("inf") == math.inf and parse_budget("8e9") == 8e9
    with pytest.raises(ValueError, match="chain budget='8GB'"):
        parse_budget("8GB")


@pytest.mark.parametrize("budget", [0, "half", math.inf])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_chain_backprop_equals_vanilla_through_the_ddim_chain(smoke, unet, discovery, precision, budget):
    """Exact at either precision and any budget: kept, recorded and recomputed steps run the
    same operations in the same context."""
    with compute_in(precision, "cpu"):
        _chain_against_vanilla(smoke, unet, discovery, budget)


def _chain_against_vanilla(smoke, unet, discovery, budget):
    unet.requires_grad_(False)
    cfg, steps = smoke.discovery, unet.steps(smoke.discovery.M)
    z = torch.randn(2, 1, 32, 32)
    k, s = torch.tensor([0, 3]), torch.tensor([2.0, -4.0])
    eps_model = Shifted(unet, discovery.shift, k, s, cfg.t_stop)

    def step(x, i):
        return ddim_step(eps_model, x, steps, i, clip=False)

    target = torch.randn(2, 1, 32, 32)
    x_v = run_chain(step, z, len(steps))
    (x_v - target).square().sum().backward()
    vanilla = _grads(discovery.shift)
    discovery.shift.zero_grad(set_to_none=True)

    if budget == "half":
        budget = record_chain(step, z, 1, math.inf).kept_bytes * len(steps) // 2
    tape = record_chain(step, z, len(steps), budget)
    if budget == math.inf:
        assert len(tape.graphs) == len(steps)
    x_c = tape.nodes[-1].requires_grad_(True)
    (x_c - target).square().sum().backward()
    backprop_chain(step, tape, x_c.grad)
    chain = _grads(discovery.shift)
    assert torch.equal(tape.nodes[-1], x_v.detach())
    assert vanilla.keys() == chain.keys() and len(chain) == len(list(discovery.shift.parameters()))
    for name in vanilla:
        assert torch.equal(vanilla[name], chain[name]), name


def test_zero_initialised_heads_leave_the_sample_unchanged(smoke, unet):
    """dh is exactly 0, so both predictions of every asymmetric step and x'_0 equal x_0 up to
    the convolutions' rounding, which may depend on a row's place in the batch."""
    model = DiscoveryModel(smoke.unet, smoke.discovery)
    steps = ddim_steps(smoke.discovery.M)
    z = torch.randn(3, 1, 32, 32)
    eps_model = Shifted(unet, model.shift, torch.tensor([0, 1, 3]), torch.tensor([5.0, -5.0, 1.0]),
                        smoke.discovery.t_stop)
    with torch.no_grad():
        h, emb = torch.randn(3, *smoke.unet.h_shape), torch.randn(3, 4 * smoke.unet.model_channels)
        assert not model.shift(h, emb, torch.full((3,), 999), torch.tensor([0, 1, 3])).any()
        shifted_eps, orig_eps = eps_model(z, steps.t[0].expand(3))
        torch.testing.assert_close(shifted_eps, orig_eps, rtol=0, atol=1e-5)
        x0 = sample_ddim(unet, z, steps, disable=True)
        shifted = sample_ddim(eps_model, z, steps, disable=True)
    assert (x0 - shifted).abs().max() < 1e-4


@pytest.mark.parametrize("method, budget", [("chain", 0), ("chain", math.inf), ("vanilla", 0)])
def test_discovery_step_trains_every_part(smoke, unet, discovery, method, budget):
    unet.requires_grad_(False)
    cfg, steps = smoke.discovery, ddim_steps(smoke.discovery.M)
    opt_g, opt_d = make_optimizers(discovery, cfg)
    before = {n: p.clone() for n, p in discovery.named_parameters()}
    stats = discovery_step(unet, discovery, cfg, steps, torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 2, 3]),
                           torch.tensor([1.0, -2.0, 3.0, -4.0]), opt_g, opt_d, method=method, budget=budget)
    changed = {n.split(".")[0] for n, p in discovery.named_parameters() if not torch.equal(before[n], p)}
    assert changed == {"shift", "reconstructor", "discriminator"}
    assert 0 < stats.d_real < 1 and stats.l_ce > 0


def test_discovery_step_rejects_unknown_method(smoke, unet, discovery):
    with pytest.raises(ValueError, match="'chain' or 'vanilla'"):
        discovery_step(unet, discovery, smoke.discovery, ddim_steps(2), torch.randn(1, 1, 32, 32),
                       torch.tensor([0]), torch.tensor([1.0]), None, None, method="checkpoint")


@pytest.mark.parametrize("dataset", DATASETS)
def test_discovery_parts_accept_every_paper_preset(dataset):
    p = get_preset(dataset, "paper")
    model = DiscoveryModel(p.unet, p.discovery).eval()
    c, size, K = p.unet.in_channels, p.unet.image_size, p.discovery.K
    h = torch.randn(1, *p.unet.h_shape)
    with torch.no_grad():
        emb = torch.randn(1, 4 * p.unet.model_channels)
        assert model.shift(h, emb, torch.tensor([999]), torch.tensor([K - 1])).shape == h.shape
        x = torch.randn(2, c, size, size)
        logits, s_hat = model.reconstructor(x, x)
        assert logits.shape == (2, K) and s_hat.shape == (2,)
        assert model.discriminator(x[:1]).shape == (1,)


@pytest.mark.parametrize("dataset", ["mnist32", "afhq128"])
def test_reconstructor_with_the_difference_image(dataset):
    p = get_preset(dataset, "smoke")
    cfg = dataclasses.replace(p.discovery, reconstructor_input="pair+difference")
    r = DiscoveryModel(p.unet, cfg).reconstructor.eval()
    x = torch.randn(2, p.unet.in_channels, p.unet.image_size, p.unet.image_size)
    logits, s_hat = r(x, x + 0.1)
    assert logits.shape == (2, cfg.K) and s_hat.shape == (2,)
    with pytest.raises(ValueError, match="'pair' or 'pair\\+difference'"):
        dataclasses.replace(p.discovery, reconstructor_input="diff")


@pytest.mark.parametrize("dataset", ["mnist32", "afhq128"])
def test_a_spatial_reconstructor_tells_mirrored_changes_apart_and_loads_a_pooled_body(dataset):
    p = get_preset(dataset, "smoke")
    cfg = dataclasses.replace(p.discovery, reconstructor_input="pair+difference", reconstructor_head="spatial")
    spatial = DiscoveryModel(p.unet, cfg).reconstructor.eval()
    pooled = Reconstructor(p.unet.in_channels, cfg.K, small=p.unet.image_size <= 32, with_difference=True).eval()
    size, c = p.unet.image_size, p.unet.in_channels
    x0 = torch.zeros(1, c, size, size)
    left, right = x0.clone(), x0.clone()  # the same blob, mirrored
    left[..., size // 2 - 2:size // 2 + 2, 4:8] = 1.0
    right[..., size // 2 - 2:size // 2 + 2, size - 8:size - 4] = 1.0
    with torch.no_grad():
        assert spatial(x0, left)[0].shape == (1, cfg.K)
        assert not torch.allclose(spatial(x0, left)[0], spatial(x0, right)[0], atol=1e-4)
        # a pooled reader's layers before the head are the spatial one's: they load, the head stays as it was
        head = {k: v.clone() for k, v in spatial.state_dict().items()
                if k.startswith("body.") and int(k.split(".")[1]) >= spatial.head_at}
        spatial.load_body(pooled)
        assert torch.equal(spatial.body[0].weight, pooled.body[0].weight)
        assert head and all(torch.equal(spatial.state_dict()[k], v) for k, v in head.items())
        with pytest.raises(RuntimeError, match="size mismatch"):
            Reconstructor(c, cfg.K + 1, small=p.unet.image_size <= 32, with_difference=False).load_body(spatial)
    with pytest.raises(ValueError, match="reconstructor_head must be one of pool, spatial, got 'flat'"):
        dataclasses.replace(p.discovery, reconstructor_head="flat")
    with pytest.raises(ValueError, match="needs the image_size"):
        Reconstructor(c, cfg.K, small=True, head="spatial")


def test_head_overlap_is_zero_for_orthogonal_heads_and_one_for_parallel(smoke):
    shift = DiscoveryModel(smoke.unet, smoke.discovery).shift
    K, C = shift.head_weight.shape[:2]
    with torch.no_grad():
        shift.head_weight.zero_()
        for k in range(K):
            shift.head_weight[k, k, 0] = 1.0  # one distinct entry per head
        assert shift.head_overlap().item() == 0.0
        scales = torch.tensor([1.0, -2.0, 3.0, 0.5])[:, None, None]
        shift.head_weight.copy_(torch.randn(1, C, C).expand(K, C, C) * scales)
        assert abs(shift.head_overlap().item() - 1.0) < 1e-6


def _overlap_setup(smoke, unet, dtype=torch.float32):
    cfg = dataclasses.replace(smoke.discovery, t_stop=400)
    shift = DiscoveryModel(smoke.unet, cfg).shift.to(dtype)
    torch.nn.init.normal_(shift.head_weight, std=0.3, generator=torch.Generator().manual_seed(3))
    steps = unet.steps(cfg.M)
    x_T = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(4), dtype=dtype)
    return cfg, shift, steps, x_T


def test_effect_overlap_is_one_for_alike_directions_and_lower_for_distinct_ones(smoke, unet):
    cfg, shift, steps, x_T = _overlap_setup(smoke, unet)
    distinct = effect_overlap(unet, shift, cfg, steps, x_T, 0).item()
    with torch.no_grad():
        shift.head_weight.copy_(shift.head_weight[:1].expand_as(shift.head_weight))
    alike = effect_overlap(unet, shift, cfg, steps, x_T, 0).item()
    assert abs(alike - 1) < 1e-5 and 0 <= distinct < 0.9 * alike


def test_effect_overlap_keeps_the_signs_apart_unless_asked_to_average_them(smoke, unet):
    cfg, shift, steps, x_T = _overlap_setup(smoke, unet)
    per_sign = effect_similarity(unet, shift, cfg, steps, x_T, 0, by_sign=True)
    averaged = effect_similarity(unet, shift, cfg, steps, x_T, 0)
    assert per_sign.shape == (2, cfg.K, cfg.K) and torch.allclose(per_sign.mean(0), averaged, atol=1e-6)
    apart = effect_overlap(unet, shift, cfg, steps, x_T, 0)
    assert torch.allclose(apart, (per_sign.square().sum((1, 2)) - cfg.K).mean() / (cfg.K * (cfg.K - 1)), atol=1e-6)
    old = effect_overlap(unet, shift, dataclasses.replace(cfg, div_signs="averaged"), steps, x_T, 0)
    assert torch.allclose(old, mean_square_offdiag(averaged)) and old <= apart + 1e-6  # averaging can only cancel
    with pytest.raises(ValueError, match="div_signs must be 'apart' or 'averaged'.*probes d0-d4"):
        dataclasses.replace(cfg, div_signs="both")


def test_effect_overlap_computes_in_float32_inside_bfloat16_autocast(smoke, unet):
    cfg, shift, steps, x_T = _overlap_setup(smoke, unet)
    plain = effect_overlap(unet, shift, cfg, steps, x_T, 0)
    (g_plain,) = torch.autograd.grad(plain, shift.head_weight)
    with compute_in("bfloat16", "cpu"):
        mixed = effect_overlap(unet, shift, cfg, steps, x_T, 0)
        (g_mixed,) = torch.autograd.grad(mixed, shift.head_weight)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, plain)
    # a backward pass inside the region still meets autocast in a few gradient formulas: close, not equal
    assert (g_mixed - g_plain).abs().max() < 0.01 * g_plain.abs().max()


def test_effect_overlap_gradient_matches_a_finite_difference_along_it(smoke, unet):
    # the UNet's timestep embedding is float32 whatever the weights, so the check is along the
    # gradient (a large, well-conditioned difference) rather than per entry in float64
    cfg, shift, steps, x_T = _overlap_setup(smoke, unet)
    i = shifted_steps(steps, cfg.t_stop) - 1  # the last shifted node: the chain before it runs too
    effect_overlap(unet, shift, cfg, steps, x_T, i).backward()
    params = [p for p in shift.parameters() if p.grad is not None]
    norm = torch.cat([p.grad.flatten() for p in params]).norm()
    assert norm > 0
    eps = 1e-3

    def moved(sign):
        with torch.no_grad():
            for p in params:
                p += sign * eps * p.grad / norm
        return effect_overlap(unet, shift, cfg, steps, x_T, i).item()

    up, down = moved(1), moved(-2)
    assert abs((up - down) / (2 * eps) - norm.item()) < 0.02 * norm.item()


def test_effect_overlap_refuses_an_unshifted_node(smoke, unet):
    cfg, shift, steps, x_T = _overlap_setup(smoke, unet)
    last = shifted_steps(steps, cfg.t_stop)
    with pytest.raises(ValueError, match=f"shifted node.*pick i < {last}"):
        effect_overlap(unet, shift, cfg, steps, x_T, last)


def test_the_effect_penalty_reaches_the_shift_block_and_only_with_its_weight(smoke, unet, discovery):
    steps = unet.steps(smoke.discovery.M)
    z = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    k, s = torch.tensor([0, 1]), torch.tensor([2.0, -3.0])
    grads, stats = {}, {}
    for weight in (0.0, 1.0):
        model = copy.deepcopy(discovery)
        cfg = dataclasses.replace(smoke.discovery, lambda_div=weight)
        opt_g, opt_d = make_optimizers(model, cfg)
        opt_g.step = lambda: None  # keep the weights: compare the gradients
        stats[weight] = discovery_step(unet, model, cfg, steps, z, k, s, opt_g, opt_d)
        grads[weight] = model.shift.head_weight.grad.clone()
    assert stats[0.0].overlap == 0 and 0 < stats[1.0].overlap <= 1
    assert not torch.allclose(grads[0.0], grads[1.0])
    assert grads[1.0][2:].abs().sum() > 0  # directions not in the batch get a gradient only from the penalty
    assert grads[0.0][2:].abs().sum() == 0


def _shift_inputs(smoke, C):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, C, 4, 4, generator=g) * 2
    return h, torch.randn(3, 4 * smoke.unet.model_channels, generator=g), torch.full((3,), 999), torch.tensor([0, 1, 2])


def _rms(t):
    return t.pow(2).mean((1, 2, 3)).sqrt()


def test_capped_shift_keeps_zero_heads_exact_and_caps_large_outputs(smoke):
    cfg = dataclasses.replace(smoke.discovery, shift_norm="cap", shift_rms=0.2)
    shift = DiscoveryModel(smoke.unet, cfg).shift
    h, emb, t, k = _shift_inputs(smoke, shift.head_weight.shape[1])
    h.requires_grad_(True)
    out = shift(h, emb, t, k)
    assert torch.equal(out, torch.zeros_like(out))  # zero heads: x'_0 == x_0 as without the cap
    out.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in shift.parameters() if p.grad is not None)
    assert torch.isfinite(h.grad).all()
    with torch.no_grad():
        shift.head_weight.normal_(0, 10.0)
        big = shift(h, emb, t, k)
        free = DiscoveryModel(smoke.unet, smoke.discovery).shift
        free.load_state_dict(shift.state_dict())
        raw = free(h, emb, t, k)
    assert (_rms(raw) > 0.2 * _rms(h)).all()
    assert torch.allclose(_rms(big), 0.2 * _rms(h), rtol=1e-5)  # capped ...
    cos = torch.nn.functional.cosine_similarity(big.flatten(1), raw.flatten(1))
    assert torch.allclose(cos, torch.ones(3), atol=1e-5)  # ... along the same direction


def test_fixed_shift_starts_random_at_the_given_size(smoke):
    cfg = dataclasses.replace(smoke.discovery, shift_norm="fixed", shift_rms=0.3)
    shift = DiscoveryModel(smoke.unet, cfg).shift
    h, emb, t, k = _shift_inputs(smoke, shift.head_weight.shape[1])
    out = shift(h, emb, t, k)
    assert torch.allclose(_rms(out), 0.3 * _rms(h), rtol=1e-5)
    assert shift.head_overlap().item() < 0.1  # random heads, nearly orthogonal


@pytest.mark.parametrize("norm", ["cap", "fixed"])
def test_rescaled_heads_edit_as_before_and_sit_at_the_target_size(smoke, norm):
    cfg = dataclasses.replace(smoke.discovery, shift_norm=norm, shift_rms=0.1, head_init_std=3.0)
    shift = DiscoveryModel(smoke.unet, cfg).shift
    h, emb, t, k = _shift_inputs(smoke, shift.head_weight.shape[1])
    before, sizes = shift(h, emb, t, k), shift.raw_sizes(h, emb)
    assert sizes.shape == (cfg.K, len(h)) and sizes.min() > 2  # heads far past the cap, as trained ones grow
    smallest = shift.rescale_heads(h, emb, 2.0)
    assert torch.allclose(smallest, sizes.amin(1))
    assert torch.allclose(shift.raw_sizes(h, emb).amin(1), torch.full((cfg.K,), 2.0), rtol=1e-4)
    assert torch.allclose(shift(h, emb, t, k), before, rtol=1e-4, atol=1e-6)


def test_rescaling_free_heads_or_under_the_cap_is_refused(smoke):
    shift = DiscoveryModel(smoke.unet, dataclasses.replace(smoke.discovery, head_init_std=1.0)).shift
    h, emb, _, _ = _shift_inputs(smoke, shift.head_weight.shape[1])
    with pytest.raises(ValueError, match="'cap' or 'fixed' and target >= 1, got shift_norm 'free'"):
        shift.rescale_heads(h, emb, 2.0)
    capped = DiscoveryModel(smoke.unet, dataclasses.replace(smoke.discovery, shift_norm="cap", shift_rms=0.1)).shift
    with pytest.raises(ValueError, match="target 0.5"):
        capped.rescale_heads(h, emb, 0.5)


@pytest.mark.parametrize("norm, rms", [("unit", 0.3), ("cap", 0.0), ("free", 0.5), ("fixed", -1.0)])
def test_shift_norm_settings_are_checked(smoke, norm, rms):
    with pytest.raises(ValueError, match="shift_norm"):
        dataclasses.replace(smoke.discovery, shift_norm=norm, shift_rms=rms)


def test_cpu_preset_names_its_departures():
    d = departures(get_preset("mnist32", "cpu"))
    assert set(d) == {"M", "batch", "steps", "lr_shift", "reconstructor_input", "lambda_orth", "lambda_mag",
                      "shift_norm", "shift_rms", "s_min", "checkpoint_every"}
    assert d["lr_shift"] == {"ours": 3e-3, "paper": 1e-3}
    assert d["M"] == {"ours": 10, "paper": 20}


def test_fused_recording_gives_the_same_step_as_separate_chains(smoke, unet, discovery):
    unet.requires_grad_(False)
    cfg, steps = smoke.discovery, ddim_steps(smoke.discovery.M)
    z, k, s = torch.randn(2, 1, 32, 32), torch.tensor([1, 2]), torch.tensor([3.0, -1.0])
    stats = {}
    for fuse in (True, False):
        torch.manual_seed(0)
        model = copy.deepcopy(discovery)
        opt_g = torch.optim.SGD([*model.shift.parameters(), *model.reconstructor.parameters()], lr=0.1)
        opt_d = torch.optim.SGD(model.discriminator.parameters(), lr=0.1)
        stats[fuse] = (discovery_step(unet, model, cfg, steps, z, k, s, opt_g, opt_d, fuse=fuse),
                       model.shift.head_weight.detach())
    (a, wa), (b, wb) = stats[True], stats[False]
    assert a.l_ce == pytest.approx(b.l_ce, rel=1e-4) and a.d_fake == pytest.approx(b.d_fake, rel=1e-4)
    assert torch.allclose(wa, wb, atol=1e-5)


@pytest.mark.parametrize("method", ["chain", "vanilla"])
def test_a_frozen_shift_block_stays_and_the_reconstructor_learns_as_in_a_joint_step(smoke, unet, discovery, method):
    """R's gradient never depends on the chain's backward pass, so with the shift block
    frozen R takes exactly the step it takes in a joint step, and the heads do not move."""
    unet.requires_grad_(False)
    steps = ddim_steps(smoke.discovery.M)
    z, k, s = torch.randn(3, 1, 32, 32), torch.tensor([0, 1, 2]), torch.tensor([2.0, -3.0, 4.0])
    after = {}
    for freeze in (False, True):
        cfg = dataclasses.replace(smoke.discovery, lambda_orth=1.0)
        model = copy.deepcopy(discovery)
        opt_g, opt_d = make_optimizers(model, cfg)
        discovery_step(unet, model, cfg, steps, z, k, s, opt_g, opt_d, method=method, freeze_shift=freeze)
        after[freeze] = {n: p.detach().clone() for n, p in model.named_parameters()}
    for n, p in discovery.named_parameters():
        if n.startswith("shift"):
            assert torch.equal(after[True][n], p) and not torch.equal(after[False][n], p), n
        elif n.startswith("reconstructor"):
            torch.testing.assert_close(after[True][n], after[False][n], rtol=0, atol=1e-6)
            assert not torch.equal(after[True][n], p), n


def test_global_directions_are_orthonormal_of_the_set_size_and_train_through_the_chain(smoke, unet):
    from hdisc.direction_set import DirectionSet
    from hdisc.discovery import GlobalShift

    cfg = dataclasses.replace(smoke.discovery, shift_form="global", shift_norm="fixed", shift_rms=0.2)
    model = DiscoveryModel(smoke.unet, cfg)
    assert isinstance(model.shift, GlobalShift) and model.shift.head_overlap() == 0
    u = model.shift.directions()
    assert torch.allclose(u @ u.T, torch.eye(cfg.K), atol=1e-5)
    h = torch.randn(3, *smoke.unet.h_shape) * 2
    dh = model.shift(h, None, None, torch.tensor([0, 1, 1]))
    assert torch.allclose(_rms(dh), 0.2 * _rms(h), rtol=1e-5) and torch.allclose(dh[1] / _rms(h)[1], dh[2] / _rms(h)[2])
    half = DirectionSet.of(model.shift, cfg, unet).at_size(0.1).shift
    assert torch.allclose(_rms(half(h, None, None, torch.tensor([0, 1, 1]))), 0.1 * _rms(h), rtol=1e-5)
    before = model.shift.matrix.detach().clone()
    opt_g, opt_d = make_optimizers(model, cfg)
    discovery_step(unet.requires_grad_(False), model, cfg, ddim_steps(cfg.M), torch.randn(2, 1, 32, 32),
                   torch.tensor([0, 1]), torch.tensor([2.0, -3.0]), opt_g, opt_d)
    assert not torch.equal(model.shift.matrix, before)
    with pytest.raises(ValueError, match="shift_form 'global' has unit directions: set shift_norm 'fixed'"):
        dataclasses.replace(smoke.discovery, shift_form="global")
    with pytest.raises(ValueError, match="shift_form must be 'block' or 'global'"):
        dataclasses.replace(smoke.discovery, shift_form="matrix")


@pytest.mark.parametrize("adv_loss, r1_gamma", [("bce", 0.0), ("hinge", 0.0), ("bce", 10.0)])
def test_the_discriminator_losses(smoke, adv_loss, r1_gamma):
    from hdisc.discovery import discriminator_loss

    cfg = dataclasses.replace(smoke.discovery, adv_loss=adv_loss, r1_gamma=r1_gamma)
    D = DiscoveryModel(smoke.unet, cfg).discriminator
    torch.manual_seed(0)
    for p in D.parameters():  # non-zero output layers, so D's input gradient is not zero
        torch.nn.init.normal_(p, std=0.2)
    real_x, fake_x = torch.randn(3, 1, 32, 32), torch.randn(3, 1, 32, 32)
    loss, real, fake = discriminator_loss(D, real_x, fake_x, cfg)
    plain = dataclasses.replace(cfg, r1_gamma=0.0)
    base = discriminator_loss(D, real_x, fake_x, plain)[0]
    if adv_loss == "hinge":
        assert torch.allclose(base, torch.relu(1 - real).mean() + torch.relu(1 + fake).mean())
    if r1_gamma:
        x = real_x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(D(x).sum(), x)
        assert torch.allclose(loss - base, r1_gamma / 2 * g.pow(2).flatten(1).sum(1).mean(), rtol=1e-4)
        loss.backward()  # the penalty's own gradient reaches D
        assert all(p.grad is not None for p in D.parameters() if p.requires_grad)
    else:
        assert torch.equal(loss, base)
    with pytest.raises(ValueError, match="adv_loss must be 'bce' \\(the paper's\\) or 'hinge'"):
        dataclasses.replace(smoke.discovery, adv_loss="wgan")


def test_chain_backprop_equals_vanilla_on_a_v_predicting_dm(smoke, unet, discovery):
    """The conversion of a v-predicting network's output to noise is part of every step's
    graph, so the chain stays exact on such a DM."""
    from hdisc.dm import DM
    from hdisc.schedule import Schedule

    v = Schedule(kind="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction="v")
    _chain_against_vanilla(smoke, DM(unet.net, unet.config, v), discovery, 0)
