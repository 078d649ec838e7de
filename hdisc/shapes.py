"""``shapes32``: procedural 32x32 RGB images whose generative factors are known.

Each image is one filled shape on a grey background, drawn deterministically from
``(seed, index)`` with the values of seven factors (:data:`FACTORS`):

- ``shape``: one of :data:`SHAPES` (ellipse, triangle, square, cross), categorical;
- ``scale``: the square root of the shape's area, in pixels (the same for every shape);
- ``orientation``: rotation from the shape's reference pose, in degrees, in [-40, 40]
  (inside half of every shape's symmetry period, 90 degrees for the square and the cross,
  so it can be read back modulo the symmetry);
- ``x``, ``y``: the shape's centroid, in pixels (column, row);
- ``hue``: the object's hue in [0, 0.8] (fully saturated, full value);
- ``background``: the background's grey level in [0, 0.6].

Continuous factors are drawn uniformly from their ranges (:data:`RANGES`), so neighbouring
values overlap in pixels. Shapes are polygons rasterised by Pillow at 8x and reduced with a
box filter (area-coverage anti-aliasing). An image is ``alpha * colour + (1 - alpha) * grey``
with ``alpha`` the coverage, so every factor is readable from pixels in closed form
(:mod:`hdisc.factors`).
"""

from __future__ import annotations

import colorsys
import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from .files import atomic_write

SIZE = 32
SHAPES = ("ellipse", "triangle", "square", "cross")
SYMMETRY = {"ellipse": 2, "triangle": 3, "square": 4, "cross": 4}
"""Rotational symmetry order of each shape: its orientation is defined modulo 360 / order."""
FACTORS = ("shape", "scale", "orientation", "x", "y", "hue", "background")
CONTINUOUS = FACTORS[1:]
RANGES = {"scale": (5.5, 10.0), "orientation": (-40.0, 40.0), "x": (10.0, 22.0), "y": (10.0, 22.0),
          "hue": (0.0, 0.8), "background": (0.0, 0.6)}
"""The interval each continuous factor is drawn from (uniformly)."""
SPLITS = {"train": (0, 50_000), "test": (1, 10_000)}
"""Each split's dataset seed and size: the DM trains on ``train``; ``test`` is held out."""
SUPERSAMPLE = 8
ELLIPSE_ASPECT = 1.7
CROSS_ARM = 3.0
"""A cross's arm length over its arm width (each arm reaches 1.5 widths from the centre)."""


def unit_outline(shape: str) -> np.ndarray:
    """The reference pose of ``shape`` as polygon vertices [V, 2] (x, y) with area 1 and its
    centroid at the origin."""
    if shape == "ellipse":
        a = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        pts = np.stack([ELLIPSE_ASPECT * np.cos(a), np.sin(a)], 1)
    elif shape == "triangle":
        a = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        pts = np.stack([np.cos(a), -np.sin(a)], 1)  # a vertex points up (rows grow downwards)
    elif shape == "square":
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    elif shape == "cross":
        w, r = 0.5, CROSS_ARM / 2
        pts = np.array([[-w, -r], [w, -r], [w, -w], [r, -w], [r, w], [w, w], [w, r], [-w, r], [-w, w], [-r, w],
                        [-r, -w], [-w, -w]], dtype=float)
    else:
        raise ValueError(f"unknown shape {shape!r}: choose one of {', '.join(SHAPES)}")
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return pts / np.sqrt(area)


_OUTLINES = {s: unit_outline(s) for s in SHAPES}


def coverage(shape: str, scale: float, orientation: float, x: float, y: float, size: int = SIZE) -> np.ndarray:
    """The fraction of each pixel the shape covers: alpha [size, size] in [0, 1].

    The polygon (area ``scale**2`` pixels, rotated by ``orientation`` degrees counter-clockwise
    as seen on screen, centroid at pixel coordinates (x, y) where pixel (0, 0)'s centre is at
    (0, 0)) is filled at ``SUPERSAMPLE`` times the resolution and box-filtered down."""
    theta = np.deg2rad(orientation)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    pts = scale * _OUTLINES[shape] @ rot.T + np.array([x + 0.5, y + 0.5])
    big = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    ImageDraw.Draw(big).polygon([tuple(p) for p in pts * SUPERSAMPLE], fill=255)
    return np.asarray(big.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0


def object_rgb(hue: float) -> np.ndarray:
    """The object's colour [3] in [0, 1]: ``hue`` at full saturation and value."""
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, 1.0, 1.0), dtype=np.float32)


def render(factors: dict, size: int = SIZE) -> np.ndarray:
    """One image [3, size, size] in [0, 1] from its factor values (``shape`` by name)."""
    alpha = coverage(factors["shape"], factors["scale"], factors["orientation"], factors["x"], factors["y"], size)
    colour = object_rgb(factors["hue"]).reshape(3, 1, 1)
    return alpha[None] * colour + (1 - alpha[None]) * np.float32(factors["background"])


def draw_factors(seed: int, index: int) -> dict:
    """The factor values of item ``index`` of the dataset with ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    out: dict = {"shape": SHAPES[int(rng.integers(len(SHAPES)))]}
    for name in CONTINUOUS:
        low, high = RANGES[name]
        out[name] = float(rng.uniform(low, high))
    return out


@dataclass
class Shapes:
    """``n`` items of the dataset with ``seed``: images [n, 3, 32, 32] in [-1, 1] and factor
    values [n, 7] (the shape as its index in :data:`SHAPES`, the others as drawn)."""

    images: torch.Tensor
    factors: torch.Tensor
    seed: int

    @classmethod
    def generate(cls, n: int, seed: int = 0, start: int = 0) -> Shapes:
        """Items ``start`` .. ``start + n - 1`` of the dataset with ``seed``."""
        for name, value, low in (("n", n, 1), ("seed", seed, 0), ("start", start, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"shapes32: {name}={value!r} is out of range: valid an int >= {low}")
        images = np.empty((n, 3, SIZE, SIZE), dtype=np.float32)
        factors = np.empty((n, len(FACTORS)), dtype=np.float32)
        for j in range(n):
            f = draw_factors(seed, start + j)
            images[j] = render(f)
            factors[j] = [SHAPES.index(f["shape"]), *(f[c] for c in CONTINUOUS)]
        return cls(torch.from_numpy(images) * 2 - 1, torch.from_numpy(factors), seed)

    def __len__(self) -> int:
        return len(self.images)

    def export(self, folder: str | os.PathLike) -> Path:
        """Write every image as ``folder/NNNNNN.png`` and the factors to ``folder/factors.csv``
        (file name, then one column per factor, the shape by name); returns the CSV's path.
        Refuses a folder that already holds a ``factors.csv``."""
        folder = Path(folder)
        table = folder / "factors.csv"
        if table.exists():
            raise FileExistsError(f"{table} exists: export into an empty folder (nothing was overwritten)")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = ((self.images + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        rows = []
        for j, (img, f) in enumerate(zip(pixels, self.factors.tolist(), strict=True)):
            name = f"{j:06d}.png"
            Image.fromarray(img).save(folder / name)
            rows.append([name, SHAPES[int(f[0])], *(repr(v) for v in f[1:])])

        def write(fh) -> None:
            text = [",".join(["file", *FACTORS])] + [",".join(r) for r in rows]
            fh.write(("\n".join(text) + "\n").encode())

        atomic_write(table, write)
        return table


def read_factors_csv(path: str | os.PathLike) -> tuple[list[str], torch.Tensor]:
    """The file names and factor values [n, 7] of an exported ``factors.csv``."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if header != ["file", *FACTORS]:
            raise ValueError(f"{path} is not a shapes32 factors table: its header is {header}, "
                             f"expected {['file', *FACTORS]}")
        names, values = [], []
        for row in reader:
            names.append(row[0])
            values.append([SHAPES.index(row[1]), *map(float, row[2:])])
    return names, torch.tensor(values, dtype=torch.float32)
