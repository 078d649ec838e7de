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
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import __version__
from .backbone import build_unet, config_from_dict, fingerprint, save_unet
from .chain import Budget, check_budget
from .data import TensorImages, draw_indices, random_batch, streamed_batches
from .discovery import DiscoveryModel, discovery_step, draw_shifts, make_optimizers
from .distributed import distributed, global_batch_norm, mean_over_ranks
from .dm import DM
from .files import atomic_save, load_file, own_run_folder, shown_path
from .guard import NonFiniteError, check_finite, check_finite_grads
from .precision import CHOICES, check_precision, compute_in, resolve_precision
from .presets import DiscoveryConfig, DMTrainConfig, UNetConfig, config_diff
from .schedule import DEFAULT, Schedule, shifted_steps

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


BUDGET_FIELDS = ("steps", "checkpoint_every", "freeze_shift_after")
"""DiscoveryConfig fields that say how a run is spent, not which model it makes: a resume may
change them, and a direction model is the same model whatever they were."""


def resume(path: Path, identity: dict, parts: dict, fresh: dict, device: str | torch.device,
           defaults: dict[str, dict] | None = None, budget: dict[str, tuple[str, ...]] | None = None,
           steps: int | None = None) -> dict:
    """Load ``parts`` (modules and optimisers, by name) from the checkpoint at ``path``.

    Returns the saved loop state, or ``fresh`` when there is no checkpoint; keys of
    ``fresh`` that an older checkpoint lacks keep their fresh value. A checkpoint whose
    ``identity`` (configuration, seed, DM) differs raises a ValueError naming the fields; a
    field a checkpoint written before it existed lacks (and ``defaults`` does not fill) is not
    compared.
    ``defaults`` fills config fields that a checkpoint written before they existed lacks
    ({identity key: {field: default}}), so older runs still resume. ``budget`` names config
    fields that are not part of a run's identity ({identity key: fields}, e.g. the step
    count: a run asked for more steps continues). A checkpoint written with another thread
    count resumes with a warning when it has steps left to take (before ``steps``, the
    run's budget): bit-exact resume needs the same count; a finished run only renders.
    """
    if not path.exists():
        return fresh
    blob = load_file(path, "training checkpoint", keys=("step", *parts))

    def comparable(key: str, value: object) -> object:
        if value is None and key in (defaults or {}):  # a field written after the checkpoint
            value = {}
        if not isinstance(value, dict):
            return value
        value = {**(defaults or {}).get(key, {}), **value}
        return {f: v for f, v in value.items() if f not in (budget or {}).get(key, ())}

    diff = {k: (comparable(k, blob.get(k)), comparable(k, v)) for k, v in identity.items()
            if (k in blob or k in (defaults or {})) and comparable(k, blob.get(k)) != comparable(k, v)}
    if diff:
        raise ValueError(f"{path} belongs to another run; differing (checkpoint, requested): {diff}. "
                         "Choose a new out_dir, or delete the checkpoint to start over.")
    left = steps is None or blob["step"] < steps
    if left and blob.get("threads", torch.get_num_threads()) != torch.get_num_threads():
        warnings.warn(f"{shown_path(path)} was written with {blob['threads']} threads and resumes with "
                      f"{torch.get_num_threads()}: the run continues, but not bit for bit as an uninterrupted "
                      f"one (set torch.set_num_threads({blob['threads']}) for that)", stacklevel=3)
    for name, part in parts.items():
        part.load_state_dict(blob[name])
    return {k: blob.get(k, v) for k, v in fresh.items()}


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step a training checkpoint holds (to render a run without training further)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path} to render: train first (parameter train=True), "
                                "or point out_dir at a folder that holds one")
    return int(load_file(path, "training checkpoint", keys=("step",))["step"])


def save_checkpoint(path: Path, identity: dict, parts: dict, state: dict) -> None:
    """Write identity, every part's state dict, the loop state and the thread count to
    ``path`` atomically."""
    atomic_save({**identity, **{n: p.state_dict() for n, p in parts.items()}, **state,
                 "threads": torch.get_num_threads()}, path)


def trained_on(device: str | torch.device, precision: str = "float32") -> str:
    """What a run's steps ran on and in which precision, for its checkpoint and record."""
    device = torch.device(device)
    if precision == "bfloat16":
        precision = "bfloat16 autocast (weights float32)"
    if device.type == "cuda":
        tf32 = " (cuDNN may use TF32 in convolutions)" if torch.backends.cudnn.allow_tf32 else ""
        return f"{torch.cuda.get_device_name(device)}, {precision}{tf32}, torch {torch.__version__}"
    return f"{device.type}, {torch.get_num_threads()} threads, {precision}, torch {torch.__version__}"


def trained_on_since(before: str | None, here: str, start_step: int) -> str:
    """A run's ``trained_on`` after steps from ``start_step`` ran ``here``: ``here``, or the
    earlier value with this piece appended when it ran elsewhere."""
    if not before or before.endswith(here):
        return before or here
    return f"{before}; from step {start_step}: {here}"


def warmup_lr(base: float, warmup: int, step: int) -> float:
    """Linear warm-up over ``warmup`` steps, then constant."""
    return base * min(1.0, (step + 1) / max(1, warmup))


def run_loop(name: str, total: int, state: dict, one_step: Callable[[int, torch.Generator], dict[str, float]],
             log_every: int, checkpoint_every: int, checkpoint: Callable[[], None], ckpt_path: Path, *,
             seed: int, causes: str, progress: bool | None = None) -> None:
    """The one training-loop skeleton: steps ``state["step"]`` .. ``total`` - 1.

    ``one_step(step, generator)`` trains one step and returns its statistics (it must
    raise :class:`NonFiniteError` before changing any weight when a loss or gradient is not
    finite). Every ``log_every`` steps the mean statistics since the last entry are appended
    to ``state["log"]``, and at ``total`` a tail entry; the running window lives in
    ``state["window"]`` (a resumed run drops the tail entry and continues its window), so a
    resumed run logs what an uninterrupted one does. Every ``checkpoint_every`` steps, and at the end,
    ``state["wall_s"]`` is updated and ``checkpoint()`` writes the files. A non-finite step
    raises :class:`NonFiniteError` naming the step and ``causes``; the last checkpoint is untouched.
    """
    if state["step"] < total and state["log"] and state["log"][-1]["step"] % log_every:
        state["log"].pop()  # the last call's tail entry: its window continues now
    start = time.perf_counter()
    bar = tqdm(range(state["step"], total), initial=state["step"], total=total, desc=name,
               disable=progress is False)
    for step in bar:
        try:
            stats = one_step(step, step_generator(seed, step))
        except NonFiniteError as e:
            last = f"the last good checkpoint {ckpt_path} (step {state['step']}) is untouched" \
                if ckpt_path.exists() else "no checkpoint was written"
            raise NonFiniteError(f"{name} step {step}: {e}; training stopped and {last}. "
                                 f"Likely causes: {causes}") from None
        window = state["window"]
        for key, value in stats.items():
            window[key] = window.get(key, 0.0) + value
        window["_n"] = window.get("_n", 0) + 1
        state["step"] = step + 1
        if state["step"] % log_every == 0 or state["step"] == total:
            mean = {k: v / window["_n"] for k, v in window.items() if k != "_n"}
            state["log"].append({"step": state["step"], **mean})
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(mean.items())[:3]})
            if state["step"] % log_every == 0:  # a tail entry at the end keeps its window open
                state["window"] = {}
        if state["step"] % checkpoint_every == 0 or state["step"] == total:
            state["wall_s"] += time.perf_counter() - start
            start = time.perf_counter()
            checkpoint()


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, rate: float) -> None:
    """ema <- rate * ema + (1 - rate) * model, parameter by parameter."""
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm, 1 - rate)


def dm_loss(unet: torch.nn.Module, x0: torch.Tensor, schedule: Schedule,
            generator: torch.Generator, rows: slice = slice(None), batch: int | None = None) -> torch.Tensor:
    """The DM's MSE at uniformly drawn t, on what ``schedule`` says the bare network predicts:
    ||eps - eps_theta(x_t, t)||^2, or ||v - v_theta(x_t, t)||^2 (mean).

    t and the noise are drawn for a whole batch of ``batch`` rows (default: x0's), of which
    x0 [B, C, H, W] holds ``rows``: one process's share, so that every process draws the
    same random numbers and the mean over the processes is the whole batch's loss."""
    whole = len(x0) if batch is None else batch
    abar_all = schedule.alphas_cumprod()
    t = torch.randint(len(abar_all), (whole,), generator=generator)[rows]
    noise = torch.randn((whole, *x0.shape[1:]), generator=generator)[rows]
    b = len(x0)
    abar = abar_all[t].float().view(b, 1, 1, 1)
    xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    dev = next(unet.parameters()).device
    return torch.nn.functional.mse_loss(unet(xt.to(dev), t.to(dev)), schedule.target(x0, noise, abar).to(dev))


def check_seed(seed: int) -> None:
    """A training seed: an int in [0, 2**63) (it seeds torch's generators)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed={seed!r} is out of range: valid an int in [0, 2**63), e.g. 0")


def check_steps(steps: int | None) -> None:
    """``steps`` overrides a preset's step count: None, or a positive int."""
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps={steps!r} is out of range: valid None (the preset's count) or an int >= 1 "
                         "(in the notebooks, -1 means the preset's count)")


def rank_rows(config: str, batch: int, rank: int, world: int) -> slice:
    """This process's rows of a global batch split evenly over ``world`` processes; a batch
    that does not split is refused, naming ``config``'s setting."""
    if batch % world:
        raise ValueError(f"{config} batch={batch} does not split over {world} processes: valid a multiple of the "
                         "world size (torchrun --nproc_per_node): change the batch or the count")
    return slice(rank * batch // world, (rank + 1) * batch // world)


def train_dm(unet_cfg: UNetConfig, train_cfg: DMTrainConfig, dataset: torch.utils.data.Dataset,
             out_dir: str | os.PathLike, *, seed: int = 0, steps: int | None = None,
             device: str | torch.device = "cpu", progress: bool | None = None,
             log_every: int = 100, workers: int = 0, precision: str = "float32") -> dict:
    """Pretrain a guided-diffusion UNet on ``dataset``; resume from ``out_dir`` if possible.

    Writes ``out_dir/dm_checkpoint.pt`` (model, EMA, optimiser, step, loss log) every
    ``train_cfg.checkpoint_every`` steps and at the end, atomically, and the EMA weights
    with their config to ``out_dir/dm_ema.pt``. ``steps`` overrides the preset's step
    count; a finished run asked for more steps continues. A non-finite loss or gradient
    stops training with :class:`NonFiniteError` and leaves the files as they were.
    ``workers`` > 0 decodes a folder dataset's images in that many ``DataLoader`` processes
    ahead of training (:func:`hdisc.data.streamed_batches`): the same images, the same run.
    ``precision`` (:mod:`hdisc.precision`, ``"auto"`` by capability) is what the forward pass
    computes in (weights, optimiser and EMA stay float32); the checkpoint's ``trained_on``
    records it. Returns a summary dict.
    """
    check_steps(steps)
    check_seed(seed)
    check_precision(precision, CHOICES)
    if len(dataset) == 0:
        raise ValueError("the training dataset is empty: pass a folder (data_dir) that holds images")
    out_dir = Path(out_dir)
    total = train_cfg.steps if steps is None else steps
    ckpt_path = out_dir / DM_CHECKPOINT
    rank, world, device = distributed(device)
    precision = resolve_precision(precision, device)
    rows = rank_rows("DMTrainConfig", train_cfg.batch, rank, world)
    with own_run_folder(out_dir) if rank == 0 else nullcontext():  # one run per folder; ranks share it
        torch.manual_seed(seed)
        unet = build_unet(unet_cfg).to(device)
        ema = copy.deepcopy(unet).requires_grad_(False)
        opt = torch.optim.Adam(unet.parameters(), lr=train_cfg.lr)
        net = torch.nn.parallel.DistributedDataParallel(unet) if world > 1 else unet  # averages gradients over ranks
        identity = {"config": dataclasses.asdict(unet_cfg), "seed": seed, "schedule": train_cfg.schedule.to_dict()}
        parts = {"model": unet, "ema": ema, "opt": opt}
        state = resume(ckpt_path, identity, parts, {"step": 0, "log": [], "window": {}, "wall_s": 0.0, "losses": None,
                                                    "trained_on": None},
                       device, defaults={"schedule": DEFAULT.to_dict()}, steps=total)  # older: the default schedule
        start_step, before, here = state["step"], state["trained_on"], trained_on(device, precision)
        losses = state.pop("losses")
        if losses:  # checkpoints written before the shared loop logged [step, loss] pairs
            state["log"] = [{"step": step, "loss": loss} for step, loss in losses]

        def checkpoint() -> None:
            if state["step"] > start_step:
                state["trained_on"] = trained_on_since(before, here, start_step)
            if rank == 0:  # every rank holds the same weights; one writes them
                save_checkpoint(ckpt_path, identity, parts, state)
                save_unet(ema, unet_cfg, out_dir / DM_WEIGHTS, train_cfg.schedule)

        unet.train()

        stream = None
        if workers and not isinstance(dataset, TensorImages):  # in-memory images need no loader
            stream = streamed_batches(dataset, train_cfg.batch, range(state["step"], total),
                                      lambda step: step_generator(seed, step), workers, rows)

        def one_step(step: int, gen: torch.Generator) -> dict[str, float]:
            for group in opt.param_groups:
                group["lr"] = warmup_lr(train_cfg.lr, train_cfg.warmup, step)
            if stream is None:
                images = random_batch(dataset, train_cfg.batch, gen, rows)
            else:  # the loader drew these indices from a copy of gen; draw them here too to keep gen's stream
                draw_indices(len(dataset), train_cfg.batch, gen)
                images = next(stream)
            with compute_in(precision, device):
                loss = dm_loss(net, images, train_cfg.schedule, gen, rows, train_cfg.batch)
            whole = mean_over_ranks(loss.detach())  # the whole batch's loss, on every rank (a NaN stops them all)
            check_finite("noise-prediction loss", whole)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            check_finite_grads("UNet", unet.parameters())
            torch.nn.utils.clip_grad_norm_(unet.parameters(), train_cfg.grad_clip)
            opt.step()
            ema_update(ema, unet, train_cfg.ema)
            return {"loss": whole.item()}

        run_loop("DM", total, state, one_step, log_every, train_cfg.checkpoint_every, checkpoint, ckpt_path,
                 seed=seed, progress=progress,
                 causes="NaN or infinite pixels in the dataset, a learning rate too large for the model")
        if not ckpt_path.exists():
            checkpoint()
        curve = [[e["step"], e["loss"]] for e in state["log"]]
        return {
            "steps": state["step"],
            "final_loss": curve[-1][1] if curve else None,
            "loss_curve": curve,
            "wall_s": state["wall_s"],
            "seed": seed,
            "trained_on": state["trained_on"],
            "hdisc_version": __version__,
            "checkpoint": shown_path(ckpt_path),
            "weights": shown_path(out_dir / DM_WEIGHTS),
        }


DISCOVERY_CHECKPOINT = "discovery_checkpoint.pt"
DISCOVERY_WEIGHTS = "directions.pt"


def train_discovery(unet: DM, cfg: DiscoveryConfig,
                    out_dir: str | os.PathLike, *, seed: int = 0, steps: int | None = None,
                    method: str = "chain", init_from: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu", precision: str = "float32", progress: bool | None = None,
                    log_every: int = 10, budget: Budget = 0) -> dict:
    """Train shift block, reconstructor and discriminator on a frozen DM (paper eq. 2).

    Resumes from ``out_dir/discovery_checkpoint.pt``; a checkpoint of another configuration
    (K, S, M, t_stop, clip, DM config, seed, ...) raises. Every ``log_every`` steps the mean
    of the step statistics (losses, D outputs, running reconstructor accuracy) is logged.
    Writes the trained model with its configuration to ``out_dir/directions.pt`` every
    ``cfg.checkpoint_every`` steps. ``init_from`` (a ``directions.pt`` of the same DM, K and
    reconstructor input) warm-starts a new run from that model's weights (shift block,
    reconstructor, discriminator; fresh optimisers); it is part of the run's identity. A
    model whose reconstructor reads with the other ``reconstructor_head`` gives its layers
    before the head, and the new head starts from its initialisation.
    A non-finite loss or gradient stops training with :class:`NonFiniteError` and leaves
    the files as they were. ``precision`` (:mod:`hdisc.precision`; ``"auto"`` chooses by the
    machine's capability) is what the steps compute in; the checkpoint's ``trained_on``
    records the one used. ``budget`` is the chain's memory for kept graphs
    (:mod:`hdisc.chain`; it changes time and memory, not the result) and is returned as
    ``chain_budget``.
    """
    check_steps(steps)
    check_seed(seed)
    check_precision(precision, CHOICES)
    check_budget(budget)
    ddim = unet.edit_steps(cfg.M, cfg.t_stop)  # refuses a t_stop that shifts no step of this DM
    unet_cfg = unet.config
    if method not in ("chain", "vanilla"):
        raise ValueError(f"method must be 'chain' or 'vanilla', got {method!r}")
    out_dir = Path(out_dir)
    total = cfg.steps if steps is None else steps
    rank, world, device = distributed(device)
    precision = resolve_precision(precision, device)
    rows = rank_rows("DiscoveryConfig", cfg.batch, rank, world)
    with own_run_folder(out_dir) if rank == 0 else nullcontext():  # one run per folder; ranks share it
        unet = unet.to(device).eval().requires_grad_(False)
        torch.manual_seed(seed)
        model = DiscoveryModel(unet_cfg, cfg).to(device)
        if world > 1:  # the reconstructor normalises with the whole batch's statistics, as in one process
            global_batch_norm(model.reconstructor)
        opt_g, opt_d = make_optimizers(model, cfg)
        identity = {"unet_config": dataclasses.asdict(unet_cfg), "discovery_config": dataclasses.asdict(cfg),
                    "seed": seed, "dm": fingerprint(unet.net)}
        if init_from:
            identity["init_from"] = shown_path(init_from)
        parts = {"model": model, "opt_g": opt_g, "opt_d": opt_d}
        ckpt_path = out_dir / DISCOVERY_CHECKPOINT
        if init_from and not ckpt_path.exists():
            start, start_cfg = load_directions(init_from, unet_cfg)
            try:
                if start_cfg.reconstructor_head == cfg.reconstructor_head:
                    model.load_state_dict(start.state_dict())
                else:  # a reader of the other head: its layers before the head load, the head starts new
                    for part in ("shift", "discriminator"):
                        getattr(model, part).load_state_dict(getattr(start, part).state_dict())
                    model.reconstructor.load_body(start.reconstructor)
            except RuntimeError as e:
                raise ValueError(f"init_from {init_from} does not fit this discovery config (K, reconstructor "
                                 f"input): {str(e).splitlines()[0]}") from None
        state = resume(ckpt_path, identity, parts, {"step": 0, "log": [], "window": {}, "wall_s": 0.0,
                                                    "trained_on": None, "shift_frozen_from": None},
                       device, defaults={"discovery_config": field_defaults(DiscoveryConfig)},
                       budget={"discovery_config": BUDGET_FIELDS}, steps=total)
        check_freeze_schedule(cfg.freeze_shift_after, state)
        shape = (unet_cfg.in_channels, unet_cfg.image_size, unet_cfg.image_size)

        def weights() -> None:
            if rank == 0:  # every rank holds the same weights; one writes them
                atomic_save({**identity, "model": model.state_dict()}, out_dir / DISCOVERY_WEIGHTS)

        start_step, before, here = state["step"], state["trained_on"], trained_on(device, precision)

        def checkpoint() -> None:
            if state["step"] > start_step:  # steps taken here (a render of a finished run keeps the file's)
                state["trained_on"] = trained_on_since(before, here, start_step)
            if rank == 0:
                save_checkpoint(ckpt_path, identity, parts, state)
            weights()

        def one_step(step: int, gen: torch.Generator) -> dict[str, float]:
            z = torch.randn((cfg.batch, *shape), generator=gen)  # every rank draws the whole batch, keeps its rows
            k, s = draw_shifts(cfg.batch, cfg.K, cfg.S, gen, cfg.s_min)
            # drawn after k and s, and only with the term on, so that runs without it draw as before
            overlap_at = int(torch.randint(shifted_steps(ddim, cfg.t_stop), (), generator=gen)) if cfg.lambda_div else 0
            frozen = 0 < cfg.freeze_shift_after <= step
            with compute_in(precision, device):
                stats = discovery_step(unet, model, cfg, ddim, z[rows].to(device), k[rows].to(device),
                                       s[rows].to(device), opt_g, opt_d, method=method, freeze_shift=frozen,
                                       overlap_at=overlap_at, budget=budget)
            if frozen and state["shift_frozen_from"] is None:
                state["shift_frozen_from"] = step
            return dataclasses.asdict(stats)

        run_loop("discovery", total, state, one_step, log_every, cfg.checkpoint_every, checkpoint, ckpt_path,
                 seed=seed, progress=progress,
                 causes="NaN or infinite weights in the DM checkpoint, a learning rate too large, "
                        "or shifts so large that the chain overflows (shift_norm 'cap' bounds them)")
        if not ckpt_path.exists():
            checkpoint()
        elif state["step"] == start_step:  # nothing trained: a render writes no model file it need not
            weights_path = out_dir / DISCOVERY_WEIGHTS
            if not weights_path.exists():
                weights()
            elif rank == 0 and not same_weights(load_file(weights_path, "direction model", keys=("model",))["model"],
                                                model.state_dict()):
                raise ValueError(f"{shown_path(weights_path)} holds another model than {shown_path(ckpt_path)} (step "
                                 f"{state['step']}): a render does not overwrite it. Move one of them away, or render "
                                 "from a folder where the two belong together")
        return {"steps": state["step"], "log": state["log"], "wall_s": state["wall_s"], "seed": seed,
                "method": method, "chain_budget": budget, "clip": cfg.clip, "head_init_std": cfg.head_init_std,
                "init_from": identity.get("init_from"), "trained_on": state["trained_on"],
                "shift_frozen_from": state["shift_frozen_from"], "hdisc_version": __version__,
                "checkpoint": shown_path(ckpt_path), "weights": shown_path(out_dir / DISCOVERY_WEIGHTS)}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same tensors under the same names."""
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def check_freeze_schedule(freeze_shift_after: int, state: dict) -> None:
    """Refuse a ``freeze_shift_after`` that would rewrite the past of a run resumed at
    ``state["step"]``: the shift block may be frozen from the current step on at the earliest,
    and a run that froze it keeps the step it froze it at (``state["shift_frozen_from"]``)."""
    step, frozen_from = state["step"], state["shift_frozen_from"]
    if frozen_from is None and 0 < freeze_shift_after < step:
        raise ValueError(f"DiscoveryConfig.freeze_shift_after={freeze_shift_after}: this run trained its shift block "
                         f"up to step {step}, so it can freeze it from step {step} on at the earliest: set "
                         f"freeze_shift_after=0 or >= {step}")
    if frozen_from is not None and freeze_shift_after != frozen_from:
        raise ValueError(f"DiscoveryConfig.freeze_shift_after={freeze_shift_after}: this run froze its shift block "
                         f"from step {frozen_from} on; set freeze_shift_after={frozen_from}, as it was trained")


def load_directions(path: str | os.PathLike, unet_cfg: UNetConfig | None = None,
                    cfg: DiscoveryConfig | None = None, dm: DM | None = None
                    ) -> tuple[DiscoveryModel, DiscoveryConfig]:
    """Load a trained discovery model written by :func:`train_discovery`.

    ``unet_cfg`` defaults to ``dm.config`` when a DM is given. If ``unet_cfg`` or ``cfg`` are
    given they must match the file's (e.g. the same K; the
    step budget may differ: a run stopped early or extended is the same model); if ``dm`` is
    given, it must be the DM the file was trained on (its weights' fingerprint, recorded by
    :func:`train_discovery`; files from before that record pass).
    """
    path = Path(path)
    if unet_cfg is None and dm is not None:
        unet_cfg = dm.config
    if not path.is_file():
        raise FileNotFoundError(f"no direction model at {path}: run experiments/train.ipynb first "
                                "(it writes out_dir/directions.pt)")
    blob = load_file(path, "direction model", keys=("unet_config", "discovery_config", "model"))
    file_unet = config_from_dict(blob["unet_config"])
    # files written before clip and head_init_std joined the config kept them beside it
    older = {f: blob[f] for f in ("clip", "head_init_std") if f in blob}
    stored = blob["discovery_config"]
    if stored.get("lambda_div", 0) > 0 and "div_signs" not in stored:  # written when the average was the only form
        older["div_signs"] = "averaged"
    file_cfg = DiscoveryConfig(**{**older, **stored})
    if cfg is not None:  # a run stopped early, extended or checkpointed more often is the same model
        cfg = dataclasses.replace(cfg, **{f: getattr(file_cfg, f) for f in BUDGET_FIELDS})
    for name, want, have in (("DM config", unet_cfg, file_unet), ("discovery config", cfg, file_cfg)):
        if want is not None and want != have:
            raise ValueError(f"{path} was trained with another {name}; "
                             f"differing (file, requested): {config_diff(have, want)}")
    if dm is not None and "dm" in blob and blob["dm"] != fingerprint(dm.net):  # files from before the field pass
        raise ValueError(f"{path} was trained on another DM (its weights' fingerprint {blob['dm'][:12]}..., this DM's "
                         f"{fingerprint(dm.net)[:12]}...): pass the DM it was trained on (dm_checkpoint), or train "
                         "directions for this one")
    model = DiscoveryModel(file_unet, file_cfg)
    model.load_state_dict(blob["model"])
    return model.eval(), file_cfg
