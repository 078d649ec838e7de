"""Memory and throughput of discovery training steps (the paper's section 5.1 benchmark).

Each setting runs in a fresh Python process (``python -m hdisc.bench '<json>'``) so that
its peak memory is its own: peak RSS on a CPU, ``torch.cuda.max_memory_allocated`` on a
GPU. :func:`run_grid` drives the processes and skips vanilla settings whose memory,
extrapolated linearly in M from the ones measured before, would not fit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

import torch
from tqdm.auto import tqdm

from .backbone import build_unet, load_unet, perturb_zero_params
from .chain import backprop_chain, record_chain, run_chain
from .discovery import DiscoveryModel, discovery_step, draw_shifts, make_optimizers
from .precision import compute_in
from .presets import get_preset
from .sampling import Shifted, ddim_step
from .schedule import ddim_steps


def _setup(dataset: str, scale: str, M: int, dm: str | None, seed: int = 0):
    preset = get_preset(dataset, scale)
    torch.manual_seed(seed)
    if dm:
        unet, _ = load_unet(dm, preset.unet)
    else:  # untrained weights: timing and memory do not depend on the values
        unet = build_unet(preset.unet)
        perturb_zero_params(unet, 0.02, seed)
    cfg = dataclasses.replace(preset.discovery, M=M)
    model = DiscoveryModel(preset.unet, cfg)
    perturb_zero_params(model.shift, 0.02, seed + 1)  # non-zero heads, so gradients are non-trivial
    return preset, cfg, unet.eval().requires_grad_(False), model


def measure(dataset: str, scale: str, method: str, M: int, batch: int, repeats: int = 2,
            dm: str | None = None, device: str = "cpu", precision: str = "float32") -> dict:
    """Time ``repeats`` full discovery steps (after one warm-up) in ``precision``
    (:mod:`hdisc.precision`) and read the peak memory.

    Meant to run in a process of its own; see :func:`run_grid`.
    """
    preset, cfg, unet, model = _setup(dataset, scale, M, dm)
    unet, model = unet.to(device), model.to(device)
    opt_g, opt_d = make_optimizers(model, cfg)
    steps = ddim_steps(M)
    gen = torch.Generator().manual_seed(0)
    shape = (batch, preset.unet.in_channels, preset.unet.image_size, preset.unet.image_size)
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats + 1):
        z = torch.randn(shape, generator=gen).to(device)
        k, s = draw_shifts(batch, cfg.K, cfg.S, gen, cfg.s_min)
        start = time.perf_counter()
        with compute_in(precision, device):
            discovery_step(unet, model, cfg, steps, z, k.to(device), s.to(device), opt_g, opt_d, method=method)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    step_s = sum(times[1:]) / repeats
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"method": method, "M": M, "batch": batch, "peak_mb": peak_mb, "baseline_mb": baseline_mb,
            "step_s": step_s, "img_per_s": batch / step_s, "device": device, "threads": torch.get_num_threads(),
            "precision": precision, "step_times_s": times[1:]}


def gradient_agreement(dataset: str, scale: str, M: int, batch: int, dm: str | None = None,
                       precision: str = "float32") -> float:
    """Max relative difference between the shift block's gradients from chain backprop and
    from vanilla autograd, for one loss on x'_0 (both from the same weights, both in ``precision``)."""
    with compute_in(precision, "cpu"):
        return _gradient_agreement(dataset, scale, M, batch, dm)


def _gradient_agreement(dataset: str, scale: str, M: int, batch: int, dm: str | None) -> float:
    preset, cfg, unet, model = _setup(dataset, scale, M, dm)
    steps = ddim_steps(M)
    gen = torch.Generator().manual_seed(1)
    z = torch.randn((batch, preset.unet.in_channels, preset.unet.image_size, preset.unet.image_size),
                    generator=gen)
    k, s = draw_shifts(batch, cfg.K, cfg.S, gen, cfg.s_min)
    eps_model = Shifted(unet, model.shift, k, s, cfg.t_stop)

    def step(x: torch.Tensor, i: int) -> torch.Tensor:
        return ddim_step(eps_model, x, steps, i, clip=True)

    weights = torch.randn(z.shape, generator=gen)
    (run_chain(step, z, M) * weights).sum().backward()
    vanilla = [p.grad.clone() for p in model.shift.parameters()]
    model.shift.zero_grad(set_to_none=True)
    nodes = record_chain(step, z, M)
    backprop_chain(step, nodes, weights)
    chain = [p.grad for p in model.shift.parameters()]
    if not any(v.any() for v in vanilla):
        raise RuntimeError("vanilla gradients are all zero: the comparison would be vacuous")
    rel = [((v - c).abs().max() / v.abs().max().clamp_min(1e-30)).item() for v, c in zip(vanilla, chain, strict=True)]
    return max(rel)


def measure_in_subprocess(args: dict, timeout: float) -> dict:
    """:func:`measure` with keyword arguments ``args`` in a fresh Python process."""
    out = subprocess.run([sys.executable, "-m", "hdisc.bench", json.dumps(args)], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, "TQDM_DISABLE": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"benchmark setting {args} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_grid(dataset: str, scale: str, Ms: list[int], batch: int, memory_budget_mb: float,
             repeats: int = 2, dm: str | None = None, device: str = "cpu", timeout: float = 1800,
             progress: bool | None = None) -> tuple[list[dict], list[dict]]:
    """Measure chain and vanilla for every M; returns (rows, skipped).

    A vanilla setting is skipped (and listed with its predicted memory) when the linear
    extrapolation of the vanilla rows measured so far exceeds ``memory_budget_mb``.
    """
    rows, skipped = [], []
    for M in tqdm(Ms, desc="benchmark", disable=progress is False):
        for method in ("chain", "vanilla"):
            done = [r for r in rows if r["method"] == method]
            if method == "vanilla" and len(done) >= 2:
                (m1, p1), (m2, p2) = [(r["M"], r["peak_mb"]) for r in done[-2:]]
                predicted = p2 + (p2 - p1) / (m2 - m1) * (M - m2)
                if predicted > memory_budget_mb:
                    skipped.append({"method": method, "M": M, "batch": batch, "predicted_mb": predicted})
                    continue
            rows.append(measure_in_subprocess(
                {"dataset": dataset, "scale": scale, "method": method, "M": M, "batch": batch,
                 "repeats": repeats, "dm": dm, "device": device}, timeout))
    return rows, skipped


if __name__ == "__main__":
    print(json.dumps(measure(**json.loads(sys.argv[1]))))
