"""Memory and throughput of discovery training steps (the paper's section 5.1 benchmark).

Each setting runs in a fresh Python process (``python -m hdisc.bench '<json>'``) so that
its peak memory is its own: peak RSS on a CPU, ``torch.cuda.max_memory_allocated`` on a
GPU. Three methods: ``vanilla`` autograd, the paper's ``chain`` (budget 0) and ``budget``:
the chain given the memory of a share of its steps' graphs (:mod:`hdisc.chain`).
:func:`run_grid` drives the processes and skips vanilla and budget settings whose memory,
extrapolated linearly in M from the vanilla ones measured before, would not fit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import time

import torch
from tqdm.auto import tqdm

from .backbone import build_unet, load_dm, perturb_zero_params
from .chain import backprop_chain, record_chain, run_chain
from .discovery import DiscoveryModel, discovery_step, draw_shifts, make_optimizers
from .dm import DM
from .precision import compute_in
from .presets import get_preset
from .sampling import Shifted, ddim_step


def _setup(dataset: str, scale: str, M: int, dm: str | None, seed: int = 0):
    preset = get_preset(dataset, scale)
    torch.manual_seed(seed)
    if dm:
        unet = load_dm(dm, preset.unet)
    else:  # untrained weights: timing and memory do not depend on the values
        unet = DM(perturb_zero_params(build_unet(preset.unet), 0.02, seed), preset.unet, preset.dm.schedule)
    cfg = dataclasses.replace(preset.discovery, M=M)
    model = DiscoveryModel(preset.unet, cfg)
    perturb_zero_params(model.shift, 0.02, seed + 1)  # non-zero heads, so gradients are non-trivial
    return preset, cfg, unet.eval().requires_grad_(False), model


def _step_fn(unet: torch.nn.Module, model: DiscoveryModel, cfg, steps, k: torch.Tensor, s: torch.Tensor):
    eps_model = Shifted(unet, model.shift, k, s, cfg.t_stop)
    return lambda x, i: ddim_step(eps_model, x, steps, i, clip=cfg.clip)


def graph_bytes(unet: torch.nn.Module, model: DiscoveryModel, cfg, steps, shape: tuple[int, ...],
                device: str = "cpu") -> int:
    """Bytes the autograd graph of one shifted step holds for a batch of ``shape``."""
    gen = torch.Generator().manual_seed(0)
    k, s = draw_shifts(shape[0], cfg.K, cfg.S, gen, cfg.s_min)
    step = _step_fn(unet, model, cfg, steps, k.to(device), s.to(device))
    return record_chain(step, torch.randn(shape, generator=gen).to(device), 1, math.inf).kept_bytes


def measure(dataset: str, scale: str, method: str, M: int, batch: int, repeats: int = 2,
            dm: str | None = None, device: str = "cpu", precision: str = "float32",
            share: float | str = 1.0) -> dict:
    """Time ``repeats`` full discovery steps (after one warm-up) in ``precision``
    (:mod:`hdisc.precision`) and read the peak memory. ``method`` ``budget`` runs the chain
    with room for ``share`` of its M steps' graphs (the budget in bytes is in the row), or
    with ``budget="auto"`` for ``share="auto"``.

    Meant to run in a process of its own; see :func:`run_grid`.
    """
    preset, cfg, unet, model = _setup(dataset, scale, M, dm)
    unet, model = unet.to(device), model.to(device)
    opt_g, opt_d = make_optimizers(model, cfg)
    steps = unet.steps(M)
    gen = torch.Generator().manual_seed(0)
    shape = (batch, preset.unet.in_channels, preset.unet.image_size, preset.unet.image_size)
    budget, per_step = 0.0, None
    if method == "budget":
        with compute_in(precision, device):
            per_step = graph_bytes(unet, model, cfg, steps, shape, device)
        # 1%: a step's count varies by a few bytes with its place; "auto": half the free memory
        budget = "auto" if share == "auto" else share * M * per_step * 1.01
        method = "chain"
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats + 1):
        z = torch.randn(shape, generator=gen).to(device)
        k, s = draw_shifts(batch, cfg.K, cfg.S, gen, cfg.s_min)
        start = time.perf_counter()
        with compute_in(precision, device):
            discovery_step(unet, model, cfg, steps, z, k.to(device), s.to(device), opt_g, opt_d, method=method,
                           budget=budget)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step_s = sum(times[1:]) / repeats
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"method": "budget" if per_step is not None else method, "M": M, "batch": batch, "peak_mb": peak_mb,
           "baseline_mb": baseline_mb, "step_s": step_s, "img_per_s": batch / step_s, "device": device,
           "threads": torch.get_num_threads(), "precision": precision, "step_times_s": times[1:]}
    if per_step is not None:
        row.update(budget_share=share, budget_mb=budget if budget == "auto" else budget / 2**20,
                   step_graph_mb=per_step / 2**20)
    return row


def measure_dm_step(dataset: str, scale: str, batch: int, repeats: int = 3, precision: str = "float32",
                    compile: bool = False, channels_last: bool = False) -> dict:
    """Time ``repeats`` DM pretraining steps (forward, loss, backward, Adam; after one warm-up,
    whose time is ``first_step_s``: with ``compile`` it holds inductor's compilation) of the
    preset's UNet at ``batch`` on the CPU."""
    preset = get_preset(dataset, scale)
    torch.manual_seed(0)
    unet = build_unet(preset.unet)
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    net = torch.compile(unet) if compile else unet
    opt = torch.optim.Adam(unet.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    shape = (batch, preset.unet.in_channels, preset.unet.image_size, preset.unet.image_size)
    times = []
    for _ in range(repeats + 1):
        x = torch.randn(shape, generator=gen)
        t = torch.randint(1000, (batch,), generator=gen)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        start = time.perf_counter()
        with compute_in(precision, "cpu"):
            loss = torch.nn.functional.mse_loss(net(x, t), x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return {"kind": "dm", "batch": batch, "precision": precision, "compile": compile, "channels_last": channels_last,
            "step_s": sum(times[1:]) / repeats, "first_step_s": times[0], "step_times_s": times[1:],
            "threads": torch.get_num_threads()}


def gradient_agreement(dataset: str, scale: str, M: int, batch: int, dm: str | None = None,
                       precision: str = "float32", share: float = 0.0) -> float:
    """Max relative difference between the shift block's gradients from chain backprop (with
    room for ``share`` of the steps' graphs) and from vanilla autograd, for one loss on x'_0
    (both from the same weights, both in ``precision``)."""
    with compute_in(precision, "cpu"):
        return _gradient_agreement(dataset, scale, M, batch, dm, share)


def _gradient_agreement(dataset: str, scale: str, M: int, batch: int, dm: str | None, share: float) -> float:
    preset, cfg, unet, model = _setup(dataset, scale, M, dm)
    steps = unet.steps(M)
    gen = torch.Generator().manual_seed(1)
    shape = (batch, preset.unet.in_channels, preset.unet.image_size, preset.unet.image_size)
    z = torch.randn(shape, generator=gen)
    k, s = draw_shifts(batch, cfg.K, cfg.S, gen, cfg.s_min)
    step = _step_fn(unet, model, cfg, steps, k, s)
    weights = torch.randn(z.shape, generator=gen)
    (run_chain(step, z, M) * weights).sum().backward()
    vanilla = [p.grad.clone() for p in model.shift.parameters()]
    model.shift.zero_grad(set_to_none=True)
    budget = share * M * graph_bytes(unet, model, cfg, steps, shape) * 1.01
    backprop_chain(step, record_chain(step, z, M, budget), weights)
    chain = [p.grad for p in model.shift.parameters()]
    if not any(v.any() for v in vanilla):
        raise RuntimeError("vanilla gradients are all zero: the comparison would be vacuous")
    rel = [((v - c).abs().max() / v.abs().max().clamp_min(1e-30)).item() for v, c in zip(vanilla, chain, strict=True)]
    return max(rel)


def measure_in_subprocess(args: dict, timeout: float) -> dict:
    """:func:`measure` with keyword arguments ``args`` in a fresh Python process
    (:func:`measure_dm_step` where ``args["kind"]`` is ``"dm"``)."""
    out = subprocess.run([sys.executable, "-m", "hdisc.bench", json.dumps(args)], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, "TQDM_DISABLE": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"benchmark setting {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


SETTINGS = (("chain", 0.0), ("vanilla", 1.0), ("budget", 1.0), ("budget", 0.5))
"""(method, share of the steps' graphs held in memory) of every benchmark row."""


def run_grid(dataset: str, scale: str, Ms: list[int], batch: int, memory_budget_mb: float,
             repeats: int = 2, dm: str | None = None, device: str = "cpu", timeout: float = 1800,
             progress: bool | None = None, precision: str = "float32") -> tuple[list[dict], list[dict]]:
    """Measure every setting of :data:`SETTINGS` for every M; returns (rows, skipped). Each
    row gains ``grad_max_rel_diff``, its gradient's largest difference to vanilla's (batch 2).

    A vanilla or budget setting is skipped (and listed with its predicted memory) when the
    linear extrapolation of the vanilla rows measured so far, times its share, exceeds
    ``memory_budget_mb``.
    """
    rows, skipped = [], []
    for M in tqdm(Ms, desc="benchmark", disable=progress is False):
        for method, share in SETTINGS:
            vanilla = [r for r in rows if r["method"] == "vanilla"]
            if share and len(vanilla) >= 2:
                (m1, p1), (m2, p2) = [(r["M"], r["peak_mb"]) for r in vanilla[-2:]]
                base = vanilla[-1]["baseline_mb"]
                predicted = base + share * (p2 + (p2 - p1) / (m2 - m1) * (M - m2) - base)
                if predicted > memory_budget_mb:
                    skipped.append({"method": method, "budget_share": share, "M": M, "batch": batch,
                                    "predicted_mb": predicted})
                    continue
            row = measure_in_subprocess(
                {"dataset": dataset, "scale": scale, "method": method, "M": M, "batch": batch, "share": share,
                 "repeats": repeats, "dm": dm, "device": device, "precision": precision}, timeout)
            row["grad_max_rel_diff"] = 0.0 if method == "vanilla" else gradient_agreement(
                dataset, scale, M, 2, dm, precision, share)
            rows.append(row)
    return rows, skipped


if __name__ == "__main__":
    _args = json.loads(sys.argv[1])
    print(json.dumps(measure_dm_step(**_args) if _args.pop("kind", None) == "dm" else measure(**_args)))


SERIES = ((("vanilla", 1.0), "vanilla autograd", "o"), (("chain", 0.0), "chain (budget 0)", "s"),
          (("budget", 1.0), "budget: every step", "^"), (("budget", 0.5), "budget: half the steps", "v"))
"""(setting, label, marker) of each plotted series."""


def setting_of(row: dict) -> tuple[str, float]:
    """A benchmark row's (method, share of graphs kept), as in :data:`SETTINGS`."""
    share = {"vanilla": 1.0, "chain": 0.0}.get(row["method"], row.get("budget_share"))
    return row["method"], share


def setting_table(rows: list[dict], skipped: list[dict]) -> str:
    """One line per measured setting and per skipped one."""
    lines = [f"{row['method']:8s} keeps {setting_of(row)[1]:4.0%}  M={row['M']:3d}  peak {row['peak_mb']:7.0f} MB  "
             f"{row['step_s']:7.2f} s/step  gradient vs vanilla {row.get('grad_max_rel_diff', 0.0):.1e}"
             for row in rows]
    lines += [f"skipped {s['method']} keeping {s.get('budget_share', 1.0):.0%} at M={s['M']}: predicted "
              f"{s['predicted_mb']:.0f} MB" for s in skipped]
    return "\n".join(lines)


def benchmark_summary(rows: list[dict]) -> dict:
    """The record's headline numbers: the largest gradient difference to vanilla of any row,
    and, at the largest M where each pair ran, chain / vanilla, budget (every step) / vanilla
    and budget (half) / chain step times, with budget (half)'s peak memory against its
    budget plus the chain's own peak (what the kept graphs may add to it)."""
    by = {(*setting_of(r), r["M"]): r for r in rows}
    out = {"grad_max_rel_diff": max(r.get("grad_max_rel_diff", 0.0) for r in rows)}
    for name, (a, b) in {"step_time_ratio": (("chain", 0.0), ("vanilla", 1.0)),
                         "budget_all_vs_vanilla": (("budget", 1.0), ("vanilla", 1.0)),
                         "budget_half_vs_chain": (("budget", 0.5), ("chain", 0.0))}.items():
        Ms = [M for (*key, M) in by if tuple(key) == a and (*b, M) in by]
        if Ms:
            M = max(Ms)
            out[name], out[f"{name}_M"] = by[(*a, M)]["step_s"] / by[(*b, M)]["step_s"], M
            if name == "budget_half_vs_chain":
                half = by[(*a, M)]
                out["budget_half_peak_mb"] = half["peak_mb"]
                out["budget_half_limit_mb"] = half["budget_mb"] + by[(*b, M)]["peak_mb"]
    return out
