"""Run bookkeeping shared by the notebooks: output folders, devices, JSON records."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from . import __version__
from .presets import Preset


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def project_path(path: str | os.PathLike) -> Path:
    """``path`` as given if absolute, else relative to the project root.

    The root is the checkout that holds this package (``experiments/`` beside it), so a
    notebook finds ``models/`` and ``runs/`` whatever folder it is executed in; for an
    installed copy without a checkout, the current directory.
    """
    path = Path(path)
    if path.is_absolute():
        return path
    here = Path(__file__).resolve().parents[1]
    return (here if (here / "experiments").is_dir() else Path.cwd()) / path


def run_dir(out_dir: str | os.PathLike, preset: Preset) -> Path:
    """``out_dir`` if given, else ``runs/<dataset>-<scale>``, under the project root; created."""
    path = project_path(out_dir if str(out_dir) else Path("runs") / preset.name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def environment() -> dict:
    """What ran it: hdisc, torch and Python versions, device and thread count."""
    return {"hdisc": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "threads": torch.get_num_threads(), "machine": platform.machine()}


def find_dm(dm_checkpoint: str | os.PathLike, preset: Preset) -> Path | None:
    """The DM checkpoint to use: ``dm_checkpoint`` if given (it must exist), else the
    committed ``models/<dataset>-<scale>/dm_ema.pt``, else ``runs/<dataset>-<scale>/dm_ema.pt``,
    else None."""
    if str(dm_checkpoint):
        path = project_path(dm_checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"dm_checkpoint {path} does not exist: pass the .pt file of a trained DM, "
                                    "or leave it empty to use the committed one or pretrain from data_dir")
        return path
    for root in ("models", "runs"):
        path = project_path(Path(root) / preset.name / "dm_ema.pt")
        if path.is_file():
            return path
    return None
