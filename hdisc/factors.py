"""Read shapes32's factors back from pixels alone (to score edits, whose factors nobody drew).

An image is ``alpha * colour + (1 - alpha) * grey`` with a fully saturated colour, so the
coverage is ``alpha = max(RGB) - min(RGB)`` pixel by pixel, and every continuous factor has a
closed form on it (:func:`read_factors`):

- ``scale``: sqrt of the covered area, sum(alpha);
- ``x``, ``y``: the alpha-weighted centroid;
- ``orientation``: the phase of the shape's n-th circular harmonic about the centroid,
  sum(alpha r^n e^{i n phi}), with n the shape's symmetry order (2 for the ellipse, 3 for the
  triangle, 4 for the square and the cross), relative to its reference pose, divided by n;
- ``hue``: the hue of the alpha-weighted mean object colour, with the grey removed;
- ``background``: the mean grey of the pixels the shape does not touch.

The shape itself is read by :class:`ShapeNet`, a small CNN trained on generated images
(:func:`train_shape_net`); its penultimate features also give a Frechet distance.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from skimage.color import rgb2hsv
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from .files import load_or_train, project_path
from .metrics import fd
from .shapes import CONTINUOUS, FACTORS, RANGES, SHAPES, SYMMETRY, Shapes, coverage

EMPTY = 1.0
"""Below this covered area (pixels) an image holds no shape: its shape-bound factors read NaN."""


def _harmonic(alpha: torch.Tensor, n: int) -> torch.Tensor:
    """sum(alpha r^n e^{i n phi}) about the alpha-weighted centroid, for images alpha [N, H, W]:
    complex [N] (phi measured counter-clockwise on screen, rows growing downwards)."""
    rows, cols = torch.meshgrid(torch.arange(alpha.shape[1], dtype=torch.float64),
                                torch.arange(alpha.shape[2], dtype=torch.float64), indexing="ij")
    a = alpha.double()
    mass = a.sum((1, 2)).clamp_min(1e-12)
    cx = (a * cols).sum((1, 2)) / mass
    cy = (a * rows).sum((1, 2)) / mass
    z = torch.complex(cols - cx.view(-1, 1, 1), -(rows - cy.view(-1, 1, 1)))
    return (a * z ** n).sum((1, 2))


def _reference_phase() -> dict[str, float]:
    """Each shape's harmonic phase at orientation 0 (centred, mid-range scale)."""
    out = {}
    for shape in SHAPES:
        alpha = torch.from_numpy(coverage(shape, 9.0, 0.0, 15.5, 15.5))[None]
        out[shape] = float(torch.angle(_harmonic(alpha, SYMMETRY[shape]))[0])
    return out


_PHASE0 = _reference_phase()


def read_factors(images: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
    """Every factor of images [N, 3, 32, 32] in [-1, 1], given their shapes (indices [N] into
    :data:`SHAPES`, e.g. :meth:`ShapeNet.read`): values [N, 7] in :data:`FACTORS`' order (the
    shape column is ``shape``). An image with less than :data:`EMPTY` pixels of coverage reads
    NaN for every factor but the background."""
    x = ((images.float() + 1) / 2).clamp(0, 1)
    alpha = x.amax(1) - x.amin(1)
    n, _, h, w = x.shape
    mass = alpha.sum((1, 2))
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
    safe = mass.clamp_min(1e-6)
    cx, cy = (alpha * cols).sum((1, 2)) / safe, (alpha * rows).sum((1, 2)) / safe
    untouched = (alpha < 0.02).float()
    grey = x.mean(1)
    background = (grey * untouched).sum((1, 2)) / untouched.sum((1, 2)).clamp_min(1)
    solid = (alpha > 0.5).float() * alpha
    colour = ((x - (1 - alpha[:, None]) * background.view(-1, 1, 1, 1)) * solid[:, None]).sum((2, 3))
    colour = colour / solid.sum((1, 2)).clamp_min(1e-6)[:, None]
    hue = torch.from_numpy(rgb2hsv(colour.clamp(0, 1).numpy()[:, None, :])[:, 0, 0].astype(np.float32))
    hue = torch.where(hue > RANGES["hue"][1] + 0.1, hue - 1, hue)  # the hue circle cut where nothing is drawn
    orientation = torch.empty(n)
    for k, name in enumerate(SHAPES):
        rows_k = shape == k
        if rows_k.any():
            order = SYMMETRY[name]
            phase = torch.angle(_harmonic(alpha[rows_k], order)) - _PHASE0[name]
            phase = torch.remainder(phase + math.pi, 2 * math.pi) - math.pi
            orientation[rows_k] = torch.rad2deg(phase / order).float()
    out = torch.stack([shape.float(), mass.sqrt(), orientation, cx, cy, hue, background], 1)
    out[mass < EMPTY, :-1] = float("nan")
    return out


class ShapeNet(nn.Module):
    """A small CNN that tells the four shapes apart: logits [N, 4] of images [N, 3, 32, 32] in
    [-1, 1]; :meth:`features` [N, 128] are its penultimate layer (for a Frechet distance)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(128, len(SHAPES))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    @torch.no_grad()
    def read(self, images: torch.Tensor, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """(shape indices [N], confidence [N]: the softmax probability of that shape)."""
        was = self.training
        self.eval()
        probs = torch.cat([F.softmax(self(images[i:i + batch].float()), 1) for i in range(0, len(images), batch)])
        self.train(was)
        conf, shape = probs.max(1)
        return shape, conf


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur and noise of random strength, so the reader also recognises a DM's imperfect samples."""
    k = torch.tensor([0.25, 0.5, 0.25])
    kernel = (k[:, None] * k[None]).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    mix = torch.rand(len(images), 1, 1, 1, generator=generator)
    noise = torch.randn(images.shape, generator=generator) * 0.08 * torch.rand(len(images), 1, 1, 1,
                                                                                generator=generator)
    return (mix * blurred + (1 - mix) * images + noise).clamp(-1, 1)


def train_shape_net(n: int = 20_000, steps: int = 1_500, batch: int = 128, seed: int = 1_000,
                    progress: bool | None = None) -> ShapeNet:
    """A :class:`ShapeNet` trained with Adam on ``n`` generated images (dataset seed ``seed``,
    apart from the training data's 0 and the held-out readers' test seed)."""
    torch.manual_seed(seed)
    data = Shapes.generate(n, seed=seed)
    net = ShapeNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    labels = data.factors[:, 0].long()
    for _ in tqdm(range(steps), desc="ShapeNet", disable=progress is False):
        idx = torch.randint(n, (batch,), generator=gen)
        loss = F.cross_entropy(net(_augment(data.images[idx], gen)), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def shapes_quality(net: ShapeNet, samples: torch.Tensor, real: torch.Tensor) -> dict:
    """How well a DM's samples [N, 3, 32, 32] reproduce shapes32, read by the factor readers
    against held-out ``real`` images [M, 3, 32, 32] (at least 2N, so that one half of them
    against the other gives the floor at this sample size): per continuous factor the
    Wasserstein-1 distance between the samples' and the real images' values over the factor's
    range width (``factor_distance``), the total variation between their shape frequencies,
    the shape reader's mean confidence, the share of samples with no shape, and the Frechet
    distance in :class:`ShapeNet`'s features (**FD-ShapeNet**). Keys ``samples`` and ``real``."""
    half = len(real) // 2

    def against(x: torch.Tensor, ref: torch.Tensor) -> dict:
        (sx, cx), (sr, _) = net.read(x), net.read(ref)
        fx, fr = read_factors(x, sx), read_factors(ref, sr)
        dist = {}
        for j, name in enumerate(FACTORS):
            if name in CONTINUOUS:
                a, b = fx[:, j], fr[:, j]
                a, b = a[torch.isfinite(a)].numpy(), b[torch.isfinite(b)].numpy()
                width = RANGES[name][1] - RANGES[name][0]
                dist[name] = float(wasserstein_distance(a, b) / width) if len(a) and len(b) else float("nan")
        freq = [torch.bincount(s, minlength=len(SHAPES)).double() / len(s) for s in (sx, sr)]
        return {"factor_distance": dist, "shape_tv": float(0.5 * (freq[0] - freq[1]).abs().sum()),
                "shape_freq": freq[0].tolist(), "mean_confidence": float(cx.mean()),
                "empty": float(torch.isnan(fx[:, 1]).float().mean()),
                "fd_shapenet": fd(net.features, x, ref)}

    with torch.no_grad():
        return {"samples": against(samples, real[:half]), "real": against(real[:half], real[half:2 * half])}


def load_shape_net(path: str | os.PathLike | None = None, progress: bool | None = None) -> ShapeNet:
    """The shape reader at ``path`` (default the committed ``models/shape_net.pt``), trained
    by :func:`train_shape_net` and saved there first if the file is absent."""
    path = project_path("models/shape_net.pt") if path is None else path
    return load_or_train(path, ShapeNet(), lambda: train_shape_net(progress=progress), "ShapeNet state dict")


def validate_readers(net: ShapeNet, n: int = 2_000, seed: int = 7) -> dict:
    """How well the readers recover drawn factors on ``n`` held-out images (dataset ``seed``):
    R^2 per continuous factor and the shape accuracy, with the shape read by ``net``."""
    data = Shapes.generate(n, seed=seed)
    shape, conf = net.read(data.images)
    read = read_factors(data.images, shape)
    out = {"n": n, "seed": seed, "shape_accuracy": float((shape == data.factors[:, 0].long()).float().mean()),
           "shape_confidence": float(conf.mean()), "r2": {}}
    for j, name in enumerate(FACTORS):
        if name in CONTINUOUS:
            truth, got = data.factors[:, j].double(), read[:, j].double()
            out["r2"][name] = float(1 - (got - truth).square().sum() / (truth - truth.mean()).square().sum())
    return out
