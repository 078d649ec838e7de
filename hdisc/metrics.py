"""Numbers that judge samples and directions, offline.

Inception weights cannot be downloaded here, so hdisc trains a small MNIST digit
classifier (``MnistNet``) and uses it twice: its confidence on samples (are they
recognisable digits?) and its penultimate features for a Fréchet distance, reported as
``FD-MnistNet`` and never called FID. True FID runs with :func:`inception_features` when
a user supplies the Inception weights file. :func:`mos` aggregates human marks (paper 5.5).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import load_mnist
from .files import load_or_train


class MnistNet(nn.Module):
    """A LeNet-style classifier of 32x32 digits in [-1, 1]; ``features`` is 128-d."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 1, 32, 32] -> [B, 128]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 1, 32, 32] -> logits [B, 10]."""
        return self.head(self.features(x))


def train_mnist_net(steps: int = 1500, batch: int = 128, seed: int = 0,
                    progress: bool | None = None) -> MnistNet:
    """Train :class:`MnistNet` on MNIST's train+valid splits (never on test)."""
    x, y = load_mnist(("train", "valid"))
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = MnistNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in tqdm(range(steps), desc="MnistNet", disable=progress is False):
        idx = torch.randint(len(x), (batch,), generator=gen)
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


def mnist_net(path: str | os.PathLike, progress: bool | None = None) -> MnistNet:
    """Load the classifier from ``path``, training and saving it first if it is absent."""
    return load_or_train(path, MnistNet(), lambda: train_mnist_net(progress=progress), "MnistNet state dict")


@torch.no_grad()
def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


@torch.no_grad()
def classifier_stats(net: MnistNet, x: torch.Tensor) -> dict[str, float]:
    """Mean max-softmax confidence and the label histogram of images [N, 1, 32, 32]."""
    probs = _batched(net, x).softmax(-1)
    conf, label = probs.max(-1)
    return {"mean_confidence": conf.mean().item(),
            "label_hist": torch.bincount(label, minlength=10).tolist()}


def feature_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] of features [N, D], in float64."""
    f = features.double().cpu().numpy()
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}), in float64.

    The trace of the matrix square root is computed in the symmetric form
    ``sum(sqrt(eigvalsh(sqrt(S1) S2 sqrt(S1))))``, which is stable where ``sqrtm`` warns.
    """
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    tr_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


Features = Callable[[torch.Tensor], torch.Tensor]
"""A feature network: images [B, C, H, W] in [-1, 1] -> features [B, D]."""


def fd(features: Features, x: torch.Tensor, ref: torch.Tensor, batch: int = 500) -> float:
    """Fréchet distance between images ``x`` and ``ref`` [N, C, H, W] in ``features``' space."""
    return frechet_distance(*feature_stats(_batched(features, x, batch)),
                            *feature_stats(_batched(features, ref, batch)))


def fd_mnistnet(net: MnistNet, x: torch.Tensor, ref: torch.Tensor) -> float:
    """Fréchet distance between images ``x`` and ``ref`` in MnistNet's 128-d features."""
    return fd(net.features, x, ref)


def inception_features(path: str | os.PathLike | None, device: str | torch.device = "cpu") -> Features:
    """FID's Inception-v3 pool features (2048-d) from a TorchScript file the user supplies.

    The file is the one StyleGAN2-ADA/3 and clean-fid use, ``inception-2015-12-05.pt``
    (``net(images, return_features=True)`` on uint8-valued images [B, 3, H, W], resized to
    299 inside). Grey images are repeated to three channels. Nothing is downloaded: without
    the file this raises and says what to pass.
    """
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(
            f"no Inception weights at {path!r}: true FID needs the TorchScript file "
            "inception-2015-12-05.pt (from NVIDIA's StyleGAN2-ADA / clean-fid releases), which cannot "
            "be downloaded here; pass its path (the fid notebook's `inception` parameter), or use "
            "the offline FD-MnistNet")
    net = torch.jit.load(str(path), map_location=device).eval()

    @torch.no_grad()
    def features(x: torch.Tensor) -> torch.Tensor:
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(device)
        return net(x.expand(-1, 3, -1, -1), return_features=True).float().cpu()

    return features


def mos(paths: list[str | os.PathLike]) -> dict | None:
    """Mean Opinion Score (paper 5.5) from annotation files, one per assessor.

    Each file is ``{"assessor": str, "marks": {k: 0 or 1}}`` as the MOS widget writes it.
    Returns the mean over every mark, the mean per direction and the counts, or None when
    there are no files (no MOS was collected).
    """
    per_direction: dict[str, list[int]] = {}
    assessors = []
    for p in paths:
        blob = json.loads(Path(p).read_text())
        if not isinstance(blob.get("marks"), dict) or "assessor" not in blob:
            raise ValueError(f"{p} is not a MOS annotation file: it needs 'assessor' and 'marks' {{k: 0|1}}")
        bad = {k: v for k, v in blob["marks"].items() if v not in (0, 1)}
        if bad:
            raise ValueError(f"{p}: marks must be 0 or 1, got {bad}")
        assessors.append(blob["assessor"])
        for k, v in blob["marks"].items():
            per_direction.setdefault(k, []).append(v)
    marks = [v for vs in per_direction.values() for v in vs]
    if not marks:
        return None
    return {"mos": sum(marks) / len(marks), "n_marks": len(marks), "assessors": sorted(assessors),
            "per_direction": {k: sum(v) / len(v) for k, v in sorted(per_direction.items(), key=lambda kv: int(kv[0]))}}


def digit_quality(net: MnistNet, samples: torch.Tensor, real: torch.Tensor) -> dict:
    """Classifier confidence and FD-MnistNet of ``samples``, beside the same for ``real``.

    ``real`` must be held-out digits (MNIST test). The reference row compares one half of
    ``real`` with the other, the floor FD-MnistNet can reach at that sample size.
    """
    half = len(real) // 2
    return {
        "samples": classifier_stats(net, samples) | {"fd_mnistnet": fd_mnistnet(net, samples, real)},
        "real": classifier_stats(net, real[:half]) | {"fd_mnistnet": fd_mnistnet(net, real[:half], real[half:])},
    }
