"""The DM value: a denoising network, its configuration and its noise schedule in one place.

k-diffusion wraps a foreign network in one object that knows its schedule and answers in
the quantity its samplers read (``external.py``); :class:`DM` is that object here. Every
sampler, the eq. 2 adapter and every chain read the noise it returns and the steps it builds
from its own schedule, so a DM trained with another schedule, T or prediction target needs
no other setting. :func:`hdisc.backbone.load_dm` is the one loader (hdisc, guided-diffusion
and diffusers checkpoints); :func:`hdisc.backbone.save_unet` writes what it reads.
"""

from __future__ import annotations

import torch
from torch import nn

from .presets import UNetConfig
from .schedule import DEFAULT, Schedule, Steps, ddim_steps, edit_steps


class DM(nn.Module):
    """A diffusion model: ``net`` (guided-diffusion's ``UNetModel``, or diffusers'
    ``UNet2DModel`` behind :class:`hdisc.diffusers_unet.DiffusersUNet`), the ``config`` that
    describes its levels and h, and the ``schedule`` it was trained with.

    ``dm(x_t [B, C, H, W], t [B])`` returns the noise eps [B', C, H, W]: the network's output,
    or for a v-predicting network (``schedule.prediction == "v"``) eps = sqrt(abar_t) v +
    sqrt(1 - abar_t) x_t. B' > B when an asymmetric step (:func:`hdisc.backbone.asymmetric`)
    doubled rows inside the network: the extra rows repeat the last input rows. The
    network's own attributes (``middle_block``, ``input_blocks``, ``in_channels``,
    ``image_size``, ...) read through, so h-space hooks attach to it unchanged. Training
    uses the bare ``net``: its loss is on what it predicts (:func:`hdisc.training.dm_loss`).
    """

    def __init__(self, net: nn.Module, config: UNetConfig, schedule: Schedule = DEFAULT):
        super().__init__()
        self.net = net
        self.config = config
        self.schedule = schedule
        self.register_buffer("abar", schedule.alphas_cumprod().float(), persistent=False)

    def __getattr__(self, name: str) -> object:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("net"), name)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.net(x, t)
        if self.schedule.prediction == "eps":
            return out
        extra = out.shape[0] - x.shape[0]
        if extra:
            x, t = torch.cat([x, x[len(x) - extra:]]), torch.cat([t, t[len(t) - extra:]])
        abar = self.abar[t.long()].view(-1, 1, 1, 1)
        return (abar.sqrt() * out.float() + (1 - abar).sqrt() * x.float()).to(out.dtype)

    def steps(self, M: int) -> Steps:
        """The M-step DDIM chain of this DM's schedule (:func:`hdisc.schedule.ddim_steps`)."""
        return ddim_steps(M, self.schedule)

    def edit_steps(self, M: int, t_stop: int) -> Steps:
        """The M-step chain that directions edit, refused when ``t_stop`` shifts none of its
        steps (:func:`hdisc.schedule.edit_steps`)."""
        return edit_steps(M, t_stop, self.schedule)
