"""guided-diffusion's networks built from presets, checkpoint I/O, and h-space hooks.

h is the output of ``UNetModel.middle_block`` (shape [B, C_mid, H / 2^L, W / 2^L]). All
access to it goes through forward hooks and pre-hooks on the unchanged UNet:

- :func:`capture_h` records h;
- :func:`shift_h` replaces h by ``h + delta(h, emb)``;
- :func:`asymmetric` makes one call return both the original and the shifted noise
  prediction from a single encoder pass: the skips and the timestep embedding are doubled
  along the batch after the encoder has run on B images, so the decoder runs once on 2B.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .dm import DM
from .files import atomic_save, load_file
from .presets import UNetConfig, config_diff
from .schedule import DEFAULT, Schedule

with warnings.catch_warnings():  # guided_diffusion.nn warns about torch.cuda.amp at import
    warnings.simplefilter("ignore", FutureWarning)
    from guided_diffusion.unet import EncoderUNetModel, UNetModel

Delta = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``delta(h [B, C, H, W], emb [B, E]) -> dh [B, C, H, W]``: a shift of h at one step."""


def _attention_ds(cfg: UNetConfig) -> tuple[int, ...]:
    return tuple(cfg.image_size // r for r in cfg.attention_resolutions)


def _common_kwargs(cfg: UNetConfig) -> dict:
    return dict(
        image_size=cfg.image_size,
        in_channels=cfg.in_channels,
        model_channels=cfg.model_channels,
        num_res_blocks=cfg.num_res_blocks,
        attention_resolutions=_attention_ds(cfg),
        dropout=cfg.dropout,
        channel_mult=cfg.channel_mult,
        num_heads=cfg.num_heads,
        use_scale_shift_norm=cfg.use_scale_shift_norm,
        resblock_updown=cfg.resblock_updown,
    )


def build_unet(cfg: UNetConfig) -> UNetModel:
    """guided-diffusion's noise-prediction ``UNetModel`` (fixed variance) for ``cfg``."""
    return UNetModel(out_channels=cfg.in_channels, **_common_kwargs(cfg))


def build_encoder(cfg: UNetConfig, out_channels: int = 1) -> EncoderUNetModel:
    """The encoder half of the same UNet with adaptive average pooling (the discriminator)."""
    return EncoderUNetModel(out_channels=out_channels, pool="adaptive", **_common_kwargs(cfg))


def save_unet(unet: nn.Module, cfg: UNetConfig, path: str | os.PathLike, schedule: Schedule = DEFAULT) -> None:
    """Write a network ``{"config": dataclass fields, "schedule": the noise schedule it was
    trained with, "state_dict": weights}`` atomically (what :func:`load_dm` reads). A
    :class:`hdisc.dm.DM` is saved as ``save_unet(dm.net, dm.config, path, dm.schedule)``."""
    if isinstance(unet, DM):
        raise TypeError("save_unet takes the network, not the DM value: "
                        "save_unet(dm.net, dm.config, path, dm.schedule)")
    atomic_save({"config": dataclasses.asdict(cfg), "schedule": schedule.to_dict(), "state_dict": unet.state_dict()},
                path)


def config_from_dict(d: dict) -> UNetConfig:
    """A :class:`UNetConfig` from its ``asdict`` form (lists back to tuples)."""
    fields = {f.name for f in dataclasses.fields(UNetConfig)}
    unknown = set(d) - fields
    if unknown:
        raise ValueError(f"unknown UNet config keys {sorted(unknown)}; expected {sorted(fields)}")
    return UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a ValueError naming every missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                             ("shape mismatches", shapes)):
            if items:
                more = f" ... and {len(items) - 8} more" if len(items) > 8 else ""
                parts.append(f"{label} ({len(items)}): {', '.join(items[:8])}{more}")
        raise ValueError(
            f"{source} does not match the configured model:\n  " + "\n  ".join(parts)
            + "\nPass the configuration the checkpoint was trained with (preset or UNetConfig)."
        )


def load_dm(path: str | os.PathLike, cfg: UNetConfig | None = None, schedule: Schedule | None = None) -> DM:
    """The one loader of a DM: an hdisc checkpoint, a plain guided-diffusion state dict, or a
    diffusers ``save_pretrained`` folder (:func:`hdisc.diffusers_unet.load_diffusers`).

    hdisc files carry their configuration and noise schedule; a guided-diffusion ``.pt``
    file (a bare state dict, as openai publishes them) needs ``cfg``, and ``schedule`` when
    it was not trained with T=1000 linear betas (the default, assumed with a warning). Given
    both ways, they must agree. hdisc files written before schedules were stored were all
    trained with the default. Returns the :class:`hdisc.dm.DM` in eval mode.
    """
    path = Path(path)
    if path.is_dir():  # a diffusers save_pretrained folder
        from .diffusers_unet import load_diffusers

        return load_diffusers(path, cfg, schedule)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: pass the path of a .pt file written by hdisc or "
                                "guided-diffusion, or of a diffusers save_pretrained folder")
    blob = load_file(path, "UNet checkpoint (hdisc's dm_ema.pt or a guided-diffusion state dict)")
    if "state_dict" in blob and "config" in blob:
        file_cfg = config_from_dict(blob["config"])
        if cfg is not None and cfg != file_cfg:
            raise ValueError(f"{path} was trained with another UNet config; "
                             f"differing fields (file, requested): {config_diff(file_cfg, cfg)}")
        cfg, state = file_cfg, blob["state_dict"]
    elif cfg is None:
        raise ValueError(f"{path} holds a bare state dict without its configuration: "
                         "pass cfg (e.g. get_preset(dataset, scale).unet)")
    else:
        state = blob
    stored = Schedule.from_dict(blob["schedule"]) if "schedule" in blob else None
    if stored is not None and schedule is not None and stored != schedule:
        raise ValueError(f"{path} was trained with the noise schedule {stored}, not the requested {schedule}: "
                         "leave schedule unset to use the file's")
    unet = build_unet(cfg)
    check_state_dict(unet, state, str(path))
    unet.load_state_dict(state)
    if stored is None and schedule is None and "config" not in blob:
        warnings.warn(f"{path} does not say which noise schedule it was trained with: assuming T=1000 linear betas "
                      "1e-4..0.02 (pass schedule=Schedule(...) if it was another)", stacklevel=2)
    return DM(unet, cfg, stored or schedule or DEFAULT).eval()


def perturb_zero_params(module: nn.Module, std: float = 0.02, seed: int = 0) -> nn.Module:
    """Give every all-zero parameter small Gaussian values (deterministic in ``seed``).

    A fresh ``UNetModel`` outputs exactly zero (its last convolutions are zero-initialised),
    so no gradient reaches h: tests and benchmarks without trained weights use this.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


@contextmanager
def _hooked(handles: list[torch.utils.hooks.RemovableHandle]) -> Iterator[None]:
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def capture_h(unet: UNetModel, embs: list[torch.Tensor] | None = None) -> Iterator[list[torch.Tensor]]:
    """Within the block, every forward call appends its h [B, C, H, W] to the list (and its
    timestep embedding [B, E] to ``embs``, if given)."""
    store: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        store.append(out)
        if embs is not None:
            embs.append(args[1])

    with _hooked([unet.middle_block.register_forward_hook(hook)]):
        yield store


@contextmanager
def shift_h(unet: UNetModel, delta: Delta) -> Iterator[None]:
    """Within the block, every forward call uses ``h + delta(h, emb)`` in place of h."""

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        return out + delta(out, args[1])

    with _hooked([unet.middle_block.register_forward_hook(hook)]):
        yield


@contextmanager
def _doubled_batch(unet: nn.Module, delta: Delta, first: int) -> Iterator[None]:
    """:func:`asymmetric` for any backbone whose ``middle_block`` is called as ``(h, emb)``."""
    n = {}

    def double(module: nn.Module, args: tuple) -> tuple:
        x, t = args[:2]
        n["rows"] = len(x)
        return (torch.cat([x, x[first:]]), torch.cat([t, t[first:]]), *args[2:])

    def shift(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        rows = n["rows"]
        return torch.cat([out[:rows], out[rows:] + delta(out[rows:], args[1][rows:])])

    with _hooked([unet.register_forward_pre_hook(double), unet.middle_block.register_forward_hook(shift)]):
        yield


@contextmanager
def asymmetric(unet: UNetModel, delta: Delta, first: int = 0) -> Iterator[None]:
    """Within the block, ``unet(x [N], t [N])`` returns ``[2N - first]``: eps(x_t) for all N
    rows, then eps(x_t | h + dh) for rows ``first..N-1``.

    The encoder and the middle block run once on N images; the timestep embedding and
    every skip connection are repeated (rows ``first:``) along the batch, and the middle
    block's output becomes ``cat([h, h[first:] + delta(h[first:], emb[first:])])``, so
    the decoder computes both predictions in one batched pass. Rows before ``first`` are
    plain references that get no shifted copy (``first=0``: every row is shifted).

    A backbone without guided-diffusion's ``input_blocks`` (diffusers' ``UNet2DModel``)
    gets the same result from one pass on the doubled batch ``[x; x[first:]]`` whose second
    part has its h shifted: exact, at the cost of a second encoder pass.
    """
    if not hasattr(unet, "input_blocks"):
        with _doubled_batch(unet, delta, first):
            yield
        return
    n = {}

    def double(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        n.setdefault("rows", out.shape[0])
        return torch.cat([out, out[first:]])

    def halve(module: nn.Module, args: tuple) -> tuple:
        h, emb = args
        return h[:n["rows"]], emb[:n["rows"]]

    def shift(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        return torch.cat([out, out[first:] + delta(out[first:], args[1][first:])])

    handles = [unet.time_embed.register_forward_hook(double)]
    for block in unet.input_blocks:
        handles.append(block.register_forward_pre_hook(halve))
        handles.append(block.register_forward_hook(double))
    handles.append(unet.middle_block.register_forward_pre_hook(halve))
    handles.append(unet.middle_block.register_forward_hook(shift))
    with _hooked(handles):
        yield


def fingerprint(module: nn.Module) -> str:
    """sha256 of a module's parameters and buffers (names, shapes, float32 bytes on the CPU):
    what identifies the DM a direction model was trained on, wherever it was loaded from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
