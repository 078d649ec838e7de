"""Post-hoc RCA: how recognisable a set of directions is, judged by a fresh reconstructor.

The RCA of the paper (section 5.5) is measured with the reconstructor that trained with
the directions, so it cannot score directions found another way (PCA, Jacobian,
supervised). Here a new :class:`hdisc.discovery.Reconstructor` is trained for a fixed
budget on one method's edits and scored on held-out edits (the idea of the VP metric of
Zhu et al., ECCV 2020): the same yardstick for every method.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .directions import Shift, edit
from .discovery import Reconstructor
from .sampling import sample_ddim
from .schedule import Steps


@torch.no_grad()
def edit_pairs(unet: nn.Module, shift: Shift, K: int, S: float, t_stop: int, steps: Steps, n_noise: int,
               per_noise: int, *, seed: int, clip: bool = True, batch: int = 64, device: str | torch.device = "cpu",
               progress: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n_noise * per_noise`` pairs: each noise's plain sample x_0 with ``per_noise`` edits
    at random k in 0..K-1 and s uniform in [-S, S]. Returns x0, x_shift [n, C, H, W] (CPU),
    k [n] and s [n]."""
    gen = torch.Generator().manual_seed(seed)
    shape = (unet.in_channels, unet.image_size, unet.image_size)
    z = torch.randn((n_noise, *shape), generator=gen)
    k = torch.randint(K, (n_noise * per_noise,), generator=gen)
    s = (torch.rand(n_noise * per_noise, generator=gen) * 2 - 1) * S
    x0 = torch.cat([sample_ddim(unet, z[i:i + batch].to(device), steps, clip=clip, disable=True).cpu()
                    for i in range(0, n_noise, batch)]).repeat_interleave(per_noise, 0)
    zz = z.repeat_interleave(per_noise, 0)
    xs = torch.cat([edit(unet, shift, zz[i:i + batch].to(device), k[i:i + batch].to(device),
                         s[i:i + batch].to(device), steps, t_stop, clip).cpu()
                    for i in tqdm(range(0, len(zz), batch), desc="edits", disable=progress is False)])
    return x0, xs, k, s


def posthoc_rca(train: tuple[torch.Tensor, ...], test: tuple[torch.Tensor, ...], K: int, *, epochs: int = 10,
                batch: int = 64, lr: float = 1e-3, seed: int = 0) -> dict:
    """Train a fresh reconstructor (both images and their difference, the small CNN for 32 px
    and a ResNet otherwise) on ``train`` pairs (x0, x_shift, k, s) from :func:`edit_pairs`
    for ``epochs`` passes, then score its accuracy on ``test`` pairs. Returns
    ``{"rca", "mag_err", "chance", "n_train", "n_test", "epochs"}``."""
    x0, xs, k, s = train
    torch.manual_seed(seed)
    net = Reconstructor(x0.shape[1], K, small=x0.shape[-1] <= 32, with_difference=True)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x0), generator=gen).split(batch):
            logits, s_hat = net(x0[idx], xs[idx])
            loss = F.cross_entropy(logits, k[idx]) + 0.1 * (s_hat - s[idx]).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    t0, ts, tk, tsv = test
    with torch.no_grad():
        out = [net(t0[i:i + 256], ts[i:i + 256]) for i in range(0, len(t0), 256)]
    logits, s_hat = torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])
    return {"rca": (logits.argmax(1) == tk).float().mean().item(), "mag_err": (s_hat - tsv).abs().mean().item(),
            "chance": 1 / K, "n_train": len(x0), "n_test": len(t0), "epochs": epochs}
