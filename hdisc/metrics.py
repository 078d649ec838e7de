"""Sample-quality numbers that work offline.

Inception weights cannot be downloaded here, so hdisc trains a small MNIST digit
classifier (``MnistNet``) and uses it twice: its confidence on samples (are they
recognisable digits?) and its penultimate features for a Fréchet distance, reported as
``FD-MnistNet`` and never called FID.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .data import load_mnist
from .files import atomic_save


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
    path = Path(path)
    net = MnistNet()
    if path.exists():
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return net.eval()
    net = train_mnist_net(progress=progress)
    atomic_save(net.state_dict(), path)
    return net


@torch.no_grad()
def _batched(fn: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
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


def fd_mnistnet(net: MnistNet, x: torch.Tensor, ref: torch.Tensor) -> float:
    """Fréchet distance between images ``x`` and ``ref`` in MnistNet's 128-d features."""
    return frechet_distance(*feature_stats(_batched(net.features, x)),
                            *feature_stats(_batched(net.features, ref)))


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
