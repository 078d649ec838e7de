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
from .discovery import DiscoveryModel, StepStats, discovery_step, draw_shifts, make_optimizers
from .files import atomic_save
from .presets import DiscoveryConfig, DMTrainConfig, UNetConfig, config_diff
from .schedule import ddim_steps, linear_alphas_cumprod

DM_CHECKPOINT = "dm_checkpoint.pt"
DM_WEIGHTS = "dm_ema.pt"


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one training step; also reseeds torch's global RNG (dropout)."""
    mixed = (seed * 1_000_003 + step) % (2**63)
    torch.manual_seed(mixed)
    return torch.Generator().manual_seed(mixed)


def field_defaults(cls: type) -> dict:
    """The default values of a dataclass's fields that have one, by name."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def resume(path: Path, identity: dict, parts: dict, fresh: dict, device: str | torch.device,
           defaults: dict[str, dict] | None = None, budget: dict[str, str] | None = None) -> dict:
    """Load ``parts`` (modules and optimisers, by name) from the checkpoint at ``path``.

    Returns the saved loop state, or ``fresh`` when there is no checkpoint. A checkpoint
    whose ``identity`` (configuration, seed) differs raises a ValueError naming the fields.
    ``defaults`` fills config fields that a checkpoint written before they existed lacks
    ({identity key: {field: default}}), so older runs still resume. ``budget`` names a
    config field that is not part of a run's identity ({identity key: field}, e.g. the
    step count: a run asked for more steps continues).
    """
    if not path.exists():
        return fresh
    blob = torch.load(path, map_location=device, weights_only=True)

    def comparable(key: str, value: object) -> object:
        if not isinstance(value, dict):
            return value
        value = {**(defaults or {}).get(key, {}), **value}
        return {f: v for f, v in value.items() if f != (budget or {}).get(key)}

    diff = {k: (comparable(k, blob.get(k)), comparable(k, v)) for k, v in identity.items()
            if comparable(k, blob.get(k)) != comparable(k, v)}
    if diff:
        raise ValueError(f"{path} belongs to another run; differing (checkpoint, requested): {diff}. "
                         "Choose a new out_dir, or delete the checkpoint to start over.")
    for name, part in parts.items():
        part.load_state_dict(blob[name])
    return {k: blob[k] for k in fresh}


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step a training checkpoint holds (to render a run without training further)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} to render: train first (parameter train=True), "
                                "or point out_dir at a folder that holds one")
    return int(torch.load(path, map_location="cpu", weights_only=True)["step"])


def save_checkpoint(path: Path, identity: dict, parts: dict, state: dict) -> None:
    """Write identity, every part's state dict and the loop state to ``path`` atomically."""
    atomic_save({**identity, **{n: p.state_dict() for n, p in parts.items()}, **state}, path)


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
    identity = {"config": dataclasses.asdict(unet_cfg), "seed": seed}
    parts = {"model": unet, "ema": ema, "opt": opt}
    state = resume(ckpt_path, identity, parts, {"step": 0, "losses": [], "wall_s": 0.0}, device)

    def checkpoint() -> None:
        save_checkpoint(ckpt_path, identity, parts, state)
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


DISCOVERY_CHECKPOINT = "discovery_checkpoint.pt"
DISCOVERY_WEIGHTS = "directions.pt"


def train_discovery(unet: torch.nn.Module, unet_cfg: UNetConfig, cfg: DiscoveryConfig,
                    out_dir: str | os.PathLike, *, seed: int = 0, steps: int | None = None,
                    method: str = "chain", clip: bool = True, head_init_std: float = 0.0,
                    device: str | torch.device = "cpu", progress: bool | None = None,
                    log_every: int = 10) -> dict:
    """Train shift block, reconstructor and discriminator on a frozen DM (paper eq. 2).

    Resumes from ``out_dir/discovery_checkpoint.pt``; a checkpoint of another configuration
    (K, S, M, t_stop, DM config, seed, ...) raises. Every ``log_every`` steps the mean of
    the step statistics (losses, D outputs, running reconstructor accuracy) is logged.
    Writes the trained model with its configuration to ``out_dir/directions.pt``.
    """
    out_dir = Path(out_dir)
    total = cfg.steps if steps is None else steps
    unet = unet.to(device).eval().requires_grad_(False)
    torch.manual_seed(seed)
    model = DiscoveryModel(unet_cfg, cfg, head_init_std).to(device)
    opt_g, opt_d = make_optimizers(model, cfg)
    identity = {"unet_config": dataclasses.asdict(unet_cfg), "discovery_config": dataclasses.asdict(cfg),
                "seed": seed, "clip": clip, "head_init_std": head_init_std}
    parts = {"model": model, "opt_g": opt_g, "opt_d": opt_d}
    ckpt_path = out_dir / DISCOVERY_CHECKPOINT
    state = resume(ckpt_path, identity, parts, {"step": 0, "log": [], "wall_s": 0.0}, device,
                   defaults={"discovery_config": field_defaults(DiscoveryConfig)},
                   budget={"discovery_config": "steps"})
    ddim = ddim_steps(cfg.M)
    shape = (unet_cfg.in_channels, unet_cfg.image_size, unet_cfg.image_size)

    def weights() -> None:
        atomic_save({**identity, "model": model.state_dict()}, out_dir / DISCOVERY_WEIGHTS)

    def checkpoint() -> None:
        save_checkpoint(ckpt_path, identity, parts, state)
        weights()

    window: list[StepStats] = []
    start, start_step = time.perf_counter(), state["step"]
    bar = tqdm(range(state["step"], total), initial=state["step"], total=total, desc="discovery",
               disable=progress is False)
    for step in bar:
        gen = step_generator(seed, step)
        z = torch.randn((cfg.batch, *shape), generator=gen)
        k, s = draw_shifts(cfg.batch, cfg, gen)
        window.append(discovery_step(unet, model, cfg, ddim, z.to(device), k.to(device), s.to(device),
                                     opt_g, opt_d, method=method, clip=clip))
        state["step"] = step + 1
        if state["step"] % log_every == 0 or state["step"] == total:
            mean = {f: sum(getattr(w, f) for w in window) / len(window) for f in StepStats.__dataclass_fields__}
            state["log"].append({"step": state["step"], **mean})
            bar.set_postfix(ce=f"{mean['l_ce']:.3f}", acc=f"{mean['acc']:.3f}", d_fake=f"{mean['d_fake']:.2f}")
            window = []
        if state["step"] % 50 == 0 or state["step"] == total:
            state["wall_s"] += time.perf_counter() - start
            start = time.perf_counter()
            checkpoint()
    if not ckpt_path.exists():
        checkpoint()
    elif state["step"] == start_step:  # nothing trained: the weights file shows the checkpoint's model
        weights()
    return {"steps": state["step"], "log": state["log"], "wall_s": state["wall_s"], "seed": seed,
            "method": method, "clip": clip, "head_init_std": head_init_std, "hdisc_version": __version__,
            "checkpoint": str(ckpt_path), "weights": str(out_dir / DISCOVERY_WEIGHTS)}


def load_directions(path: str | os.PathLike, unet_cfg: UNetConfig | None = None,
                    cfg: DiscoveryConfig | None = None) -> tuple[DiscoveryModel, DiscoveryConfig]:
    """Load a trained discovery model written by :func:`train_discovery`.

    If ``unet_cfg`` or ``cfg`` are given they must match the file's (e.g. the same K; the
    step budget may differ: a run stopped early or extended is the same model).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no direction model at {path}: run experiments/train.ipynb first "
                                "(it writes out_dir/directions.pt)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    file_unet = config_from_dict(blob["unet_config"])
    file_cfg = DiscoveryConfig(**blob["discovery_config"])
    if cfg is not None:
        cfg = dataclasses.replace(cfg, steps=file_cfg.steps)
    for name, want, have in (("DM config", unet_cfg, file_unet), ("discovery config", cfg, file_cfg)):
        if want is not None and want != have:
            raise ValueError(f"{path} was trained with another {name}; "
                             f"differing (file, requested): {config_diff(have, want)}")
    model = DiscoveryModel(file_unet, file_cfg, blob["head_init_std"])
    model.load_state_dict(blob["model"])
    return model.eval(), file_cfg
