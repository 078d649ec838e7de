"""diffusers' ``UNet2DModel`` as a backbone beside guided-diffusion's ``UNetModel``.

Optional: ``pip install 'hdisc[diffusers]'``. A local ``save_pretrained`` folder loads by
path, nothing is downloaded: the layout of the google/ddpm-* checkpoints (``config.json``,
the weights and ``scheduler_config.json`` in one folder) or a pipeline folder (``unet/``
and ``scheduler/``). h is the output of ``mid_block``, reached with the same forward hooks
as guided-diffusion's ``middle_block`` (:mod:`hdisc.backbone`); no model code is copied.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .dm import DM
from .presets import UNetConfig, config_diff
from .schedule import DEFAULT, Schedule


class DiffusersUNet(nn.Module):
    """A ``UNet2DModel`` with the interface hdisc uses of a DM: ``unet(x [B, C, H, W], t [B])
    -> the network's output [B, C, H, W]`` (noise, or v, which :class:`hdisc.dm.DM` converts),
    ``in_channels``, ``image_size``
    and ``middle_block`` (the module whose output is h, called as ``mid_block(h, emb)``).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        c = net.config
        problems = []
        if c.get("num_class_embeds") or c.get("class_embed_type"):
            problems.append("it is class-conditional")
        if c.get("time_embedding_type", "positional") != "positional":
            problems.append(f"its time embedding is {c['time_embedding_type']!r}, not 'positional'")
        if net.mid_block is None:
            problems.append("it has no mid_block (no h)")
        if not isinstance(c.sample_size, int):
            problems.append(f"its sample_size {c.sample_size} is not square")
        if problems:
            raise ValueError("this UNet2DModel cannot be used as an hdisc DM: " + "; ".join(problems))
        self.net = net
        self.in_channels, self.image_size = c.in_channels, c.sample_size
        # mid_block's attention leaves h in channels-last strides; GroupNorm's backward on such
        # an input crashes torch 2.13 on the CPU (segfault), so every later hook sees it contiguous
        net.mid_block.register_forward_hook(lambda module, args, out: out.contiguous())

    @property
    def middle_block(self) -> nn.Module:
        return self.net.mid_block

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t).sample

    def hdisc_config(self) -> UNetConfig:
        """The guided-diffusion configuration with the same image size, channels, levels and
        h shape: what the shift block, reconstructor and discriminator are built from."""
        c = self.net.config
        base = c.block_out_channels[0]
        if any(ch % base for ch in c.block_out_channels):
            raise ValueError(f"block_out_channels {tuple(c.block_out_channels)} are not multiples of the first: "
                             "hdisc describes levels as multiples of it")
        return UNetConfig(c.sample_size, c.in_channels, base, tuple(ch // base for ch in c.block_out_channels),
                          c.layers_per_block)


def _part(folder: Path, sub: str, name: str) -> Path:
    """``folder/sub/name`` for a pipeline folder, else ``folder/name``."""
    return folder / sub / name if (folder / sub / name).is_file() else folder / name


def load_diffusers(folder: str | os.PathLike, cfg: UNetConfig | None = None, schedule: Schedule | None = None
                   ) -> DM:
    """Load a ``UNet2DModel`` from a local ``save_pretrained`` folder (never downloading).

    The schedule comes from its ``scheduler_config.json``; without one, ``schedule`` or the
    T=1000 linear default (with a warning). ``cfg``, when given, must equal the model's
    :meth:`DiffusersUNet.hdisc_config`. Returns the :class:`hdisc.dm.DM` (that configuration,
    the schedule) in eval mode.
    """
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise ImportError("loading a diffusers folder needs diffusers: pip install 'hdisc[diffusers]'") from None
    folder = Path(folder)
    config = _part(folder, "unet", "config.json")
    if not config.is_file():
        raise FileNotFoundError(f"{folder} holds no config.json (nor unet/config.json): pass a folder written by "
                                "UNet2DModel.save_pretrained or a pipeline's save_pretrained")
    unet = DiffusersUNet(UNet2DModel.from_pretrained(config.parent, local_files_only=True, low_cpu_mem_usage=False))
    own = unet.hdisc_config()
    if cfg is not None and cfg != own:
        raise ValueError(f"{folder} holds another model than the configured one; differing fields (folder, "
                         f"requested): {config_diff(own, cfg)}")
    sched = _part(folder, "scheduler", "scheduler_config.json")
    stored = Schedule.from_diffusers(json.loads(sched.read_text())) if sched.is_file() else None
    if stored is not None and schedule is not None and stored != schedule:
        raise ValueError(f"{sched} gives the noise schedule {stored}, not the requested {schedule}: leave schedule "
                         "unset to use the folder's")
    if stored is None and schedule is None:
        warnings.warn(f"{folder} has no scheduler_config.json: assuming T=1000 linear betas 1e-4..0.02 (pass "
                      "schedule=Schedule(...) if it was trained with another)", stacklevel=2)
    return DM(unet, own, stored or schedule or DEFAULT).eval()
