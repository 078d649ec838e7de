"""Training loops with atomic checkpoints and exact resume.

Every step draws its randomness (batch indices, noise, timesteps, dropout) from a
generator seeded by ``(seed, step)``, so a run killed at any point and resumed from its
last checkpoint produces the same weights as a run that was never interrupted.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import __version__
from .backbone import build_unet, config_from_dict, save_unet
from .data import random_batch
from .files import atomic_save
from .presets import DMTrainConfig, UNetConfig
from .schedule import linear_alphas_cumprod

DM_CHECKPOINT = "dm_checkpoint.pt"
DM_WEIGHTS = "dm_ema.pt"


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one training step; also reseeds torch's global RNG (dropout)."""
    mixed = (seed * 1_000_003 + step) % (2**63)
    torch.manual_seed(mixed)
    return torch.Generator().manual_seed(mixed)


def warmup_lr(base: float, warmup: int, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then constant."""
    return base * min(1.0, (step + 1) / max(1, warmup))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, rate: float) -> None:
    """ema <- rate * ema + (1 - rate) * model, parameter by parameter."""
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm, 1 - rate)


def dm_loss(unet: torch.nn.Module, x0: torch.Tensor, abar_all: torch.Tensor,
            generator: torch.Generator) -> torch.Tensor:
    """Noise-prediction MSE at uniformly drawn t: ||eps - eps_theta(x_t, t)||^2 (mean)."""
    b = x0.shape[0]
    t = torch.randint(len(abar_all), (b,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    abar = abar_all[t].float().view(b, 1, 1, 1)
    xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    dev = next(unet.parameters()).device
    return torch.nn.functional.mse_loss(unet(xt.to(dev), t.to(dev)), noise.to(dev))


def train_dm(unet_cfg: UNetConfig, train_cfg: DMTrainConfig, dataset: torch.utils.data.Dataset,
             out_dir: str | os.PathLike, *, seed: int = 0, steps: int | None = None,
             device: str | torch.device = "cpu", progress: bool | None = None,
             log_every: int = 100) -> dict:
    """Pretrain a guided-diffusion UNet on ``dataset``; resume from ``out_dir`` if possible.

    Writes ``out_dir/dm_checkpoint.pt`` (model, EMA, optimiser, step, loss log) every
    ``train_cfg.checkpoint_every`` steps and at the end, atomically, and the EMA weights
    with their config to ``out_dir/dm_ema.pt``. ``steps`` overrides the preset's step
    count; a finished run asked for more steps continues. Returns a summary dict.
    """
    out_dir = Path(out_dir)
    total = train_cfg.steps if steps is None else steps
    ckpt_path = out_dir / DM_CHECKPOINT
    torch.manual_seed(seed)
    unet = build_unet(unet_cfg).to(device)
    ema = copy.deepcopy(unet).requires_grad_(False)
    opt = torch.optim.Adam(unet.parameters(), lr=train_cfg.lr)
    state = {"step": 0, "losses": [], "wall_s": 0.0}
    if ckpt_path.exists():
        blob = torch.load(ckpt_path, map_location=device, weights_only=True)
        saved_cfg = config_from_dict(blob["config"])
        if saved_cfg != unet_cfg or blob["seed"] != seed:
            raise ValueError(
                f"{ckpt_path} belongs to another run (config {saved_cfg}, seed {blob['seed']}); "
                "choose a new out_dir or delete the checkpoint to start over")
        unet.load_state_dict(blob["model"])
        ema.load_state_dict(blob["ema"])
        opt.load_state_dict(blob["opt"])
        state = {k: blob[k] for k in state}

    def checkpoint() -> None:
        atomic_save({"config": dataclasses.asdict(unet_cfg), "seed": seed, "model": unet.state_dict(),
                     "ema": ema.state_dict(), "opt": opt.state_dict(), **state}, ckpt_path)
        save_unet(ema, unet_cfg, out_dir / DM_WEIGHTS)

    abar_all = linear_alphas_cumprod()
    unet.train()
    running, count = 0.0, 0
    start = time.perf_counter()
    bar = tqdm(range(state["step"], total), initial=state["step"], total=total, desc="DM",
               disable=progress is False)
    for step in bar:
        gen = step_generator(seed, step)
        for group in opt.param_groups:
            group["lr"] = warmup_lr(train_cfg.lr, train_cfg.warmup, step)
        loss = dm_loss(unet, random_batch(dataset, train_cfg.batch, gen), abar_all, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), train_cfg.grad_clip)
        opt.step()
        ema_update(ema, unet, train_cfg.ema)
        running, count = running + loss.item(), count + 1
        state["step"] = step + 1
        if state["step"] % log_every == 0 or state["step"] == total:
            state["losses"].append([state["step"], running / count])
            bar.set_postfix(loss=f"{running / count:.4f}")
            running, count = 0.0, 0
        if state["step"] % train_cfg.checkpoint_every == 0 or state["step"] == total:
            state["wall_s"] += time.perf_counter() - start
            start = time.perf_counter()
            checkpoint()
    if not ckpt_path.exists():
        checkpoint()
    return {
        "steps": state["step"],
        "final_loss": state["losses"][-1][1] if state["losses"] else None,
        "loss_curve": state["losses"],
        "wall_s": state["wall_s"],
        "seed": seed,
        "hdisc_version": __version__,
        "checkpoint": str(ckpt_path),
        "weights": str(out_dir / DM_WEIGHTS),
    }
