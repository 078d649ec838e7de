import copy
import dataclasses
import io
import math

import pytest
import torch

from hdisc.backbone import load_dm
from hdisc.data import TensorImages
from hdisc.training import (
    DISCOVERY_CHECKPOINT,
    DISCOVERY_WEIGHTS,
    DM_CHECKPOINT,
    checkpoint_step,
    load_directions,
    train_discovery,
    train_dm,
    warmup_lr,
)


@pytest.fixture
def images():
    return TensorImages(torch.rand(16, 1, 32, 32) * 2 - 1)


def _weights(path):
    return torch.load(path / DM_CHECKPOINT, weights_only=True)


def test_two_seeded_runs_are_identical(tmp_path, smoke, images):
    a = train_dm(smoke.unet, smoke.dm, images, tmp_path / "a", seed=3, progress=False)
    b = train_dm(smoke.unet, smoke.dm, images, tmp_path / "b", seed=3, progress=False)
    c = train_dm(smoke.unet, smoke.dm, images, tmp_path / "c", seed=4, progress=False)
    assert a["loss_curve"] == b["loss_curve"] != c["loss_curve"]
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(wa["model"][k], wb["model"][k]) for k in wa["model"])
    assert a["steps"] == smoke.dm.steps


def test_resume_continues_the_same_run(tmp_path, smoke, images):
    cfg = dataclasses.replace(smoke.dm, steps=4, checkpoint_every=1)
    straight = train_dm(smoke.unet, cfg, images, tmp_path / "straight", seed=0, progress=False, log_every=1)

    class Killed(Exception):
        pass

    calls = {"n": 0}
    real_backward = torch.Tensor.backward

    def die_on_third_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed
        return real_backward(self, *args, **kwargs)

    torch.Tensor.backward = die_on_third_step
    try:
        with pytest.raises(Killed):
            train_dm(smoke.unet, cfg, images, tmp_path / "resumed", seed=0, progress=False, log_every=1)
    finally:
        torch.Tensor.backward = real_backward
    assert _weights(tmp_path / "resumed")["step"] == 2
    resumed = train_dm(smoke.unet, cfg, images, tmp_path / "resumed", seed=0, progress=False, log_every=1)
    assert resumed["loss_curve"] == straight["loss_curve"]
    ws, wr = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    for part in ("model", "ema"):
        assert all(torch.equal(ws[part][k], wr[part][k]) for k in ws[part])
    ema = load_dm(tmp_path / "resumed" / "dm_ema.pt")
    assert torch.equal(ema.out[2].weight, wr["ema"]["out.2.weight"])


def test_asking_for_more_steps_extends_a_finished_run(tmp_path, smoke, images):
    train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=0, progress=False)
    more = train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=0, steps=smoke.dm.steps + 2, progress=False)
    assert more["steps"] == smoke.dm.steps + 2


def test_rendering_a_checkpoint_trains_no_further(tmp_path, smoke, images):
    with pytest.raises(FileNotFoundError, match="train=True"):
        checkpoint_step(tmp_path / DM_CHECKPOINT)
    train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=0, steps=2, progress=False)
    assert checkpoint_step(tmp_path / DM_CHECKPOINT) == 2
    again = train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=0, steps=2, progress=False)
    assert again["steps"] == 2


def test_resuming_with_another_config_or_seed_refuses(tmp_path, smoke, images):
    train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=0, progress=False)
    with pytest.raises(ValueError, match="belongs to another run"):
        train_dm(smoke.unet, smoke.dm, images, tmp_path, seed=1, progress=False)
    wider = dataclasses.replace(smoke.unet, model_channels=64)
    with pytest.raises(ValueError, match="Choose a new out_dir"):
        train_dm(wider, smoke.dm, images, tmp_path, seed=0, progress=False)


def test_warmup_is_linear_then_flat():
    assert warmup_lr(1.0, 4, 0) == 0.25 and warmup_lr(1.0, 4, 3) == 1.0 and warmup_lr(1.0, 4, 100) == 1.0


def _discovery(tmp_path, smoke, unet, **kw):
    return train_discovery(unet, smoke.discovery, tmp_path, progress=False, log_every=1, **kw)


def test_discovery_resume_continues_the_same_run(tmp_path, smoke, unet):
    straight = _discovery(tmp_path / "a", smoke, unet, steps=3)
    _discovery(tmp_path / "b", smoke, unet, steps=2)
    resumed = _discovery(tmp_path / "b", smoke, unet, steps=3)
    assert resumed["log"] == straight["log"] and len(resumed["log"]) == 3
    a = torch.load(tmp_path / "a" / DISCOVERY_WEIGHTS, weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / DISCOVERY_WEIGHTS, weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    model, cfg = load_directions(tmp_path / "a" / DISCOVERY_WEIGHTS, smoke.unet, smoke.discovery)
    assert cfg == smoke.discovery and model.shift.K == smoke.discovery.K


def test_a_run_with_the_effect_penalty_resumes_exactly_and_logs_the_overlap(tmp_path, smoke, unet):
    # bit for bit on one thread and on the machine's count (the penalty repeats every k in one batch;
    # indexing the heads with head_weight[k] made its gradient depend on the thread count)
    cfg = dataclasses.replace(smoke.discovery, lambda_div=1.0)
    threads = torch.get_num_threads()
    for n in (1, threads):
        torch.set_num_threads(n)
        try:
            straight = train_discovery(unet, cfg, tmp_path / f"a{n}", steps=3, progress=False, log_every=1)
            train_discovery(unet, cfg, tmp_path / f"b{n}", steps=2, progress=False, log_every=1)
            resumed = train_discovery(unet, cfg, tmp_path / f"b{n}", steps=3, progress=False,
                                      log_every=1)
        finally:
            torch.set_num_threads(threads)
        assert resumed["log"] == straight["log"]
    assert straight["log"][0]["overlap"] < 1e-3  # zero heads (the paper's start): no effect, no overlap
    assert all(0 < row["overlap"] <= 1 for row in straight["log"][1:])
    assert all(row["overlap"] == 0 for row in _discovery(tmp_path / "off", smoke, unet, steps=2)["log"])


def test_a_checkpoint_from_before_a_config_field_existed_resumes(tmp_path, smoke, unet):
    straight = _discovery(tmp_path / "a", smoke, unet, steps=3)
    _discovery(tmp_path / "b", smoke, unet, steps=2)
    path = tmp_path / "b" / DISCOVERY_CHECKPOINT
    blob = torch.load(path, weights_only=True)
    for field in ("shift_norm", "shift_rms", "lambda_div", "div_images"):  # added later; defaults: the old behaviour
        del blob["discovery_config"][field]
    torch.save(blob, path)
    assert _discovery(tmp_path / "b", smoke, unet, steps=3)["log"] == straight["log"]
    blob = torch.load(path, weights_only=True)
    del blob["discovery_config"]["shift_norm"]
    torch.save(blob, path)
    fixed = dataclasses.replace(smoke.discovery, shift_norm="fixed", shift_rms=0.3)
    with pytest.raises(ValueError, match="belongs to another run.*shift_norm"):
        train_discovery(unet, fixed, tmp_path / "b", steps=4, progress=False)


def test_a_run_continues_when_the_presets_step_budget_grows(tmp_path, smoke, unet):
    straight = _discovery(tmp_path / "a", smoke, unet, steps=3)
    short = dataclasses.replace(smoke.discovery, steps=2)
    train_discovery(unet, short, tmp_path / "b", progress=False, log_every=1)
    longer = dataclasses.replace(smoke.discovery, steps=3)
    resumed = train_discovery(unet, longer, tmp_path / "b", progress=False, log_every=1)
    assert resumed["log"] == straight["log"]
    model, cfg = load_directions(tmp_path / "b" / DISCOVERY_WEIGHTS, smoke.unet, dataclasses.replace(longer, steps=9))
    assert cfg == longer
    spent_otherwise = dataclasses.replace(longer, steps=9, checkpoint_every=7, freeze_shift_after=5)
    assert load_directions(tmp_path / "b" / DISCOVERY_WEIGHTS, smoke.unet, spent_otherwise)[1] == longer


def test_a_render_never_rewrites_a_model_file(tmp_path, smoke, unet):
    _discovery(tmp_path, smoke, unet, steps=2)
    older = (tmp_path / DISCOVERY_WEIGHTS).read_bytes()
    _discovery(tmp_path, smoke, unet, steps=3)
    current = (tmp_path / DISCOVERY_WEIGHTS).read_bytes()
    assert _discovery(tmp_path, smoke, unet, steps=3)["steps"] == 3  # trains nothing, writes nothing
    assert (tmp_path / DISCOVERY_WEIGHTS).read_bytes() == current
    (tmp_path / DISCOVERY_WEIGHTS).write_bytes(older)  # another model beside the checkpoint
    with pytest.raises(ValueError, match="holds another model than .* a render does not overwrite it"):
        _discovery(tmp_path, smoke, unet, steps=3)
    assert (tmp_path / DISCOVERY_WEIGHTS).read_bytes() == older
    (tmp_path / DISCOVERY_WEIGHTS).unlink()  # a missing weights file is written from the checkpoint
    _discovery(tmp_path, smoke, unet, steps=3)
    again = torch.load(tmp_path / DISCOVERY_WEIGHTS, weights_only=True)["model"]
    newer = torch.load(io.BytesIO(current), weights_only=True)["model"]
    assert all(torch.equal(again[k], newer[k]) for k in newer)


def test_a_second_run_in_one_folder_is_refused_and_stale_temp_files_go(tmp_path, smoke, unet):
    from hdisc.files import own_run_folder

    stale = tmp_path / ".directions.pt.abc123.tmp"
    stale.write_bytes(b"half a file")
    with own_run_folder(tmp_path):
        assert not stale.exists()
        with pytest.raises(RuntimeError, match="is in use by another run.*nothing was started"):
            _discovery(tmp_path, smoke, unet, steps=1)
    assert not (tmp_path / DISCOVERY_WEIGHTS).exists()
    _discovery(tmp_path, smoke, unet, steps=1)  # released: the folder is free again


def test_a_run_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, smoke, unet):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(PermissionError, match="a-file/run cannot be written.*nothing was started"):
        _discovery(tmp_path / "a-file" / "run", smoke, unet, steps=1)


def test_discovery_checkpoint_of_another_k_refuses(tmp_path, smoke, unet):
    _discovery(tmp_path, smoke, unet, steps=1)
    other = dataclasses.replace(smoke.discovery, K=8)
    with pytest.raises(ValueError, match="belongs to another run.*'K': 4"):
        train_discovery(unet, other, tmp_path, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"another discovery config.*'K': \(4, 8\)"):
        load_directions(tmp_path / DISCOVERY_WEIGHTS, cfg=other)
    with pytest.raises(FileNotFoundError, match="run experiments/train.ipynb first"):
        load_directions(tmp_path / "missing.pt")


def test_shifts_are_the_papers_uniform_draw_unless_s_min_is_set(smoke):
    from hdisc.discovery import draw_shifts

    gen, ref = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    k, s = draw_shifts(64, smoke.discovery.K, smoke.discovery.S, gen, smoke.discovery.s_min)
    assert torch.equal(k, torch.randint(smoke.discovery.K, (64,), generator=ref))
    assert torch.equal(s, (torch.rand(64, generator=ref) * 2 - 1) * smoke.discovery.S)  # the paper's draw, bit for bit
    cfg = dataclasses.replace(smoke.discovery, s_min=2.0)
    _, s = draw_shifts(1000, cfg.K, cfg.S, torch.Generator().manual_seed(0), cfg.s_min)
    assert s.abs().min() >= 2.0 and s.abs().max() <= cfg.S
    assert (s > 0).float().mean().item() == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ValueError, match=r"s_min=5.0 is out of range: valid \[0, 5\)"):
        dataclasses.replace(smoke.discovery, s_min=5.0)


def test_a_run_can_freeze_its_shift_block_from_its_current_step_on(tmp_path, smoke, unet):
    _discovery(tmp_path, smoke, unet, steps=2)
    heads = torch.load(tmp_path / DISCOVERY_WEIGHTS, weights_only=True)["model"]
    early = dataclasses.replace(smoke.discovery, freeze_shift_after=1)
    with pytest.raises(ValueError, match="freeze_shift_after=1: .*up to step 2.*freeze_shift_after=0 or >= 2"):
        train_discovery(unet, early, tmp_path, steps=4, progress=False)
    frozen = dataclasses.replace(smoke.discovery, freeze_shift_after=2)
    out = train_discovery(unet, frozen, tmp_path, steps=4, progress=False, log_every=1)
    after = torch.load(tmp_path / DISCOVERY_WEIGHTS, weights_only=True)["model"]
    assert out["shift_frozen_from"] == 2 and len(out["log"]) == 4
    for name, value in heads.items():  # the shift block as at step 2; R and D trained on
        assert torch.equal(after[name], value) == name.startswith("shift."), name
    with pytest.raises(ValueError, match="froze its shift block from step 2 on; set freeze_shift_after=2"):
        train_discovery(unet, dataclasses.replace(frozen, freeze_shift_after=3), tmp_path, steps=5,
                        progress=False)
    with pytest.raises(ValueError, match="freeze_shift_after.*0 trains the shift block in every step"):
        dataclasses.replace(frozen, freeze_shift_after=-1)


def test_a_run_records_each_precision_and_machine_it_trained_on(tmp_path, smoke, unet):
    first = _discovery(tmp_path, smoke, unet, steps=2)
    assert first["trained_on"].startswith("cpu, ") and ", float32, torch " in first["trained_on"]
    same = _discovery(tmp_path, smoke, unet, steps=3)
    assert same["trained_on"] == first["trained_on"]
    mixed = _discovery(tmp_path, smoke, unet, steps=4, precision="bfloat16")
    assert mixed["trained_on"].startswith(first["trained_on"] + "; from step 3: cpu, ")
    assert "bfloat16 autocast (weights float32)" in mixed["trained_on"] and all(
        math.isfinite(v) for e in mixed["log"] for v in e.values())
    with pytest.raises(ValueError, match="precision must be one of .*'float16'"):
        _discovery(tmp_path, smoke, unet, steps=5, precision="float16")


@pytest.mark.parametrize("flags, expected", [(["avx512f", "avx512_bf16", "amx_bf16", "amx_tile"], "bfloat16"),
                                             (["avx512f", "avx512_bf16"], "float32"), ([], "float32")])
def test_auto_precision_is_chosen_by_the_cpu_and_recorded(tmp_path, smoke, unet, monkeypatch, flags, expected):
    import hdisc.precision

    monkeypatch.setattr(hdisc.precision, "cpu_flags", lambda: flags)
    assert hdisc.precision.resolve_precision("auto", "cpu") == expected
    assert hdisc.precision.resolve_precision("auto", "cuda") == "float32"  # no comparison recorded on GPUs
    assert hdisc.precision.resolve_precision("float32", "cpu") == "float32"  # asked for, never overridden
    result = _discovery(tmp_path, smoke, unet, steps=1, precision="auto")
    chosen = ", bfloat16 autocast (weights float32), " if expected == "bfloat16" else ", float32, "
    assert chosen in result["trained_on"]
    with pytest.raises(ValueError, match="precision must be one of .*'auto'.*AMX"):
        hdisc.precision.resolve_precision("fast", "cpu")


def test_a_direction_file_from_before_div_signs_reads_as_the_sign_averaged_penalty(tmp_path, smoke):
    import dataclasses as dc

    from hdisc.discovery import DiscoveryModel

    cfg = dc.replace(smoke.discovery, lambda_div=10.0)
    stored = {k: v for k, v in dc.asdict(cfg).items() if k != "div_signs"}  # as files were written before it
    blob = {"unet_config": dc.asdict(smoke.unet), "discovery_config": stored,
            "model": DiscoveryModel(smoke.unet, cfg).state_dict()}
    torch.save(blob, tmp_path / "old.pt")
    assert load_directions(tmp_path / "old.pt", smoke.unet)[1].div_signs == "averaged"
    torch.save({**blob, "discovery_config": {**stored, "lambda_div": 0.0}}, tmp_path / "plain.pt")
    assert load_directions(tmp_path / "plain.pt", smoke.unet)[1].div_signs == "apart"  # no penalty, no difference


def test_a_warm_start_may_change_the_reconstructors_head(smoke, trained, tmp_path):
    unet = load_dm(trained["dm_checkpoint"], smoke.unet)
    start, start_cfg = load_directions(trained["directions"], smoke.unet)
    assert start_cfg.reconstructor_head == "pool"
    slow = dataclasses.replace(start_cfg, reconstructor_head="spatial", lr=1e-5, lr_shift=1e-5)
    train_discovery(unet, slow, tmp_path / "spatial", steps=1, init_from=trained["directions"],
                    progress=False)
    model, cfg = load_directions(tmp_path / "spatial" / "directions.pt", smoke.unet)
    assert cfg.reconstructor_head == "spatial"
    # one step at lr 1e-5 from the start's weights: the shift block and the reader's first layer are the start's
    for new, old in ((model.shift.head_weight, start.shift.head_weight),
                     (model.reconstructor.body[0].weight, start.reconstructor.body[0].weight)):
        assert (new - old).abs().max() < 1e-4 < old.abs().max()
    with pytest.raises(ValueError, match="does not fit this discovery config"):
        train_discovery(unet, dataclasses.replace(slow, K=slow.K + 1), tmp_path / "other", steps=1,
                        init_from=trained["directions"], progress=False)


def test_directions_know_their_dm_and_refuse_another(tmp_path, smoke, unet):
    _discovery(tmp_path, smoke, unet, steps=1)
    other = copy.deepcopy(unet)
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    with pytest.raises(ValueError, match="belongs to another run.*'dm'"):
        _discovery(tmp_path, smoke, other, steps=2)  # resuming on another DM
    load_directions(tmp_path / DISCOVERY_WEIGHTS, smoke.unet, dm=unet)
    with pytest.raises(ValueError, match="was trained on another DM .*pass the DM it was trained on"):
        load_directions(tmp_path / DISCOVERY_WEIGHTS, smoke.unet, dm=other)
