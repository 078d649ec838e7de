"""Image grids and figures (matplotlib)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from einops import rearrange

from .files import atomic_write


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images [N, C, H, W] in [-1, 1] -> uint8 array [N, H, W, C]."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return rearrange(x, "n c h w -> n h w c").numpy()


def grid(x: torch.Tensor, nrow: int, pad: int = 2) -> np.ndarray:
    """Tile images [N, C, H, W] in [-1, 1] into one uint8 array [rows*H, nrow*W, C].

    Missing cells of the last row are left white.
    """
    imgs = to_uint8(x)
    n, h, w, c = imgs.shape
    rows = -(-n // nrow)
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for k, img in enumerate(imgs):
        r, q = divmod(k, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = img
    return out


def png_bytes(g: np.ndarray, scale: int = 1) -> bytes:
    """PNG encoding of a uint8 grid [H, W, C] (from :func:`grid`), enlarged ``scale`` times
    by pixel repetition (small digits stay sharp in a browser)."""
    g = g.repeat(scale, 0).repeat(scale, 1)
    buf = io.BytesIO()
    plt.imsave(buf, g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0, vmax=255, format="png")
    return buf.getvalue()


def save_grid(x: torch.Tensor, path: str | os.PathLike, nrow: int = 8, scale: int = 1) -> Path:
    """Write ``grid(x, nrow)`` as a PNG (:func:`png_bytes`, enlarged ``scale`` times),
    atomically; returns the path."""
    data = png_bytes(grid(x, nrow), scale)
    return atomic_write(path, lambda f: f.write(data))


def show_grid(x: torch.Tensor, nrow: int = 8, title: str | None = None, scale: float = 0.6) -> plt.Figure:
    """A matplotlib figure of ``grid(x, nrow)`` (for notebooks)."""
    g = grid(x, nrow)
    fig, ax = plt.subplots(figsize=(scale * g.shape[1] / 34, scale * g.shape[0] / 34))
    ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0, vmax=255)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def plot_curves(rows: list[dict], x: str, series: dict[str, str], title: str | None = None) -> plt.Figure:
    """Line plots of ``rows`` (dicts): ``series`` maps a legend label to a key of the rows."""
    fig, ax = plt.subplots(figsize=(5.5, 3))
    xs = [r[x] for r in rows]
    for label, key in series.items():
        ax.plot(xs, [r[key] for r in rows], label=label)
    ax.set_xlabel(x)
    if series:
        ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def show_matrix(m: torch.Tensor | np.ndarray, rows: list, cols: list | None = None, title: str | None = None,
                label: str | None = None) -> plt.Figure:
    """A heat map of a matrix m [r, c] with values in [-1, 1] (similarities, correlations),
    rows and columns named by ``rows`` and ``cols`` (``cols`` defaults to ``rows``)."""
    m = np.asarray(m)
    cols = rows if cols is None else cols
    fig, ax = plt.subplots(figsize=(max(3.2, 0.3 * len(cols) + 1.8), max(3.0, 0.17 * len(rows) + 1.2)))
    im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, fontsize=7, rotation=45 if isinstance(cols[0], str) else 0)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8, label=label)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_points(points: list[dict], x: str, y: str, label: str, title: str | None = None,
                xlabel: str | None = None, ylabel: str | None = None) -> plt.Figure:
    """A scatter of ``points`` (dicts) at (``x``, ``y``), each annotated with its ``label``."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.scatter([p[x] for p in points], [p[y] for p in points])
    for p in points:
        ax.annotate(str(p[label]), (p[x], p[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def best_edits(unet: torch.nn.Module, sets: dict, record: dict, seed: int = 0, n_strengths: int = 5) -> plt.Figure:
    """Each factor's best direction in every family, edited on one noise: a figure with a
    panel per family (columns of ``sets``, {method: DirectionSet}, named as ``record``'s rows)
    whose rows are ``record["factors"]`` (each row: that factor's ``best_direction`` of the
    family at ``n_strengths`` strengths over [-S, S], labelled with the direction's name)."""
    rows = {row["method"]: row for row in record["rows"]}
    names = [name for name in sets if name in rows]
    factors = record["factors"]
    first = sets[names[0]]
    device = next(unet.parameters()).device
    z = torch.randn((1, unet.in_channels, unet.image_size, unet.image_size),
                    generator=torch.Generator().manual_seed(seed + 30)).to(device)
    svals = torch.linspace(-first.S, first.S, n_strengths)
    fig, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 0.45 * len(factors) + 0.7), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        dirs, best = sets[name], rows[name]["best_direction"]
        edits = torch.cat([dirs.sweep(unet, z, best[f], svals)[0].cpu() for f in factors])
        g = grid(edits, n_strengths)
        ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0, vmax=255)
        side = g.shape[0] / len(factors)
        ax.set_yticks([side * (i + 0.5) for i in range(len(factors))],
                      [f"{f}: {dirs.label(best[f])}" for f in factors], fontsize=6)
        ax.set_xticks([])
        ax.set_title(name, fontsize=7)
    fig.tight_layout()
    return fig


def with_difference(sweeps: torch.Tensor) -> torch.Tensor:
    """One direction's sweeps [N, n, C, H, W] (strengths in increasing order) with each row's
    difference map appended: x(s_max) - x(s_min), divided by the largest absolute difference
    over the N rows, so that mid grey is no change, white what the edit adds and black what
    it removes. Returns [N, n + 1, C, H, W]."""
    diff = sweeps[:, -1] - sweeps[:, 0]
    return torch.cat([sweeps, (diff / diff.abs().amax().clamp_min(1e-8))[:, None]], 1)


def direction_panels(sweeps: dict[str, torch.Tensor], svals: torch.Tensor) -> plt.Figure:
    """A panel per direction, side by side: its sweeps [N, n, C, H, W] over ``svals`` [n]
    (one row per noise) with :func:`with_difference`'s map as the last column, titled by the
    dict's key (e.g. "direction 4: area+")."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(2.1 * len(sweeps), 2.3), squeeze=False)
    for ax, (title, images) in zip(axes[0], sweeps.items(), strict=True):
        n = images.shape[1] + 1
        g = grid(with_difference(images.cpu()).flatten(0, 1), n)
        ax.imshow(g[..., 0] if g.shape[-1] == 1 else g, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([g.shape[1] / n * (i + 0.5) for i in range(n)],
                      [f"{s:g}" for s in svals.tolist()] + ["diff"], fontsize=6)
        ax.set_yticks([])
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig
