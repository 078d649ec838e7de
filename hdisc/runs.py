"""Run bookkeeping shared by the notebooks: output folders, devices, JSON records."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from . import __version__
from .backbone import load_dm
from .discovery import DiscoveryModel
from .dm import DM
from .files import project_path, sha256, shown_path, write_json
from .presets import DiscoveryConfig, Preset, get_preset
from .training import load_directions


def script_settings(args: Sequence[str], valid: dict[str, str]) -> dict[str, str]:
    """A script's ``key=value`` arguments as {key: value}. ``valid`` maps each key the script
    takes to what it takes (e.g. ``{"n": "N >= 1"}``); an unknown key or an argument without
    ``=`` exits with the valid ones."""
    given = dict(a.split("=", 1) for a in args if "=" in a)
    unknown = sorted(set(given) - set(valid)) + [a for a in args if "=" not in a]
    if unknown:
        raise SystemExit(f"unknown setting(s) {unknown}: give "
                         + ", ".join(f"{key}={what}" for key, what in valid.items()))
    return given


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cpu``, ``cuda`` and ``cuda:N`` name
    one. Anything else, or CUDA on a machine without it, raises a ValueError naming the
    valid values."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    valid = "auto, cpu" + (", cuda, " + ", ".join(f"cuda:{i}" for i in range(n)) if n else "")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r} is not a device: valid {valid}") from None
    if dev.type not in ("cpu", "cuda") or (dev.type == "cuda" and (n == 0 or (dev.index or 0) >= n)):
        raise ValueError(f"device={device!r} is not available here: valid {valid}"
                         + ("" if n else " (this machine has no CUDA GPU: use auto or cpu)"))
    return dev


def run_dir(out_dir: str | os.PathLike, preset: Preset) -> Path:
    """``out_dir`` if given, else ``runs/<dataset>-<scale>``, under the project root; created.
    An ``out_dir`` that is a file is refused by name."""
    path = project_path(out_dir if str(out_dir) else Path("runs") / preset.name)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"out_dir {path} is a file: pass a folder (it is created if missing)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def environment() -> dict:
    """What ran it: hdisc, torch and Python versions, device and thread count."""
    return {"hdisc": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "threads": torch.get_num_threads(), "machine": platform.machine()}


def write_record(path: str | os.PathLike, record: dict, files: dict[str, str | os.PathLike | None]) -> Path:
    """The one writer of chapter records: ``record`` plus ``"models"``, each model file it was
    computed from as ``{role: {"path": project-relative path, "sha256": ...}}`` (``files``:
    {role: path}; None for a file that was not used), and ``"environment"``
    (:func:`environment`, unless the record brings its own, e.g. one re-read from disk)."""
    models = {role: None if f is None else {"path": shown_path(f), "sha256": sha256(f)} for role, f in files.items()}
    return write_json(path, {**record, "models": models, "environment": record.get("environment", environment())})


def computed_from(record: dict, files: dict[str, str | os.PathLike | None]) -> bool:
    """Whether ``record`` (as :func:`write_record` wrote it) was computed from the model files
    ``files`` ({role: path or None}): the same roles, each file with the recorded sha256."""
    recorded = {role: None if m is None else m["sha256"] for role, m in record.get("models", {}).items()}
    return recorded == {role: None if f is None else sha256(f) for role, f in files.items()}


def recorded(record: str | os.PathLike, files: dict[str, str | os.PathLike | None], key: str, **settings: object
             ) -> object | None:
    """``record[key]`` from the JSON record at path ``record`` when that record was computed from
    the model files ``files`` (:func:`computed_from`) with the same ``settings`` (each
    ``record[name] == value``); else None (no file, no key, other files or settings). How a
    chapter reuses an expensive result of the same models instead of computing it again."""
    record = Path(record)
    if not record.is_file():
        return None
    rec = json.loads(record.read_text())
    same = key in rec and all(rec.get(name) == value for name, value in settings.items())
    return rec[key] if same and computed_from(rec, files) else None


def released_record(out: str | os.PathLike, checkpoint: str, record: str) -> dict | None:
    """What a render (``train=False``) of the run folder ``out`` draws from: None when it holds
    the training ``checkpoint`` (render that), else its ``record`` (a released model's folder:
    the weights and their record, no checkpoint), or a FileNotFoundError naming both when it
    holds neither."""
    out = Path(out)
    if (out / checkpoint).exists():
        return None
    if not (out / record).is_file():
        raise FileNotFoundError(f"nothing to render in {shown_path(out)}: it holds neither {checkpoint} nor {record}; "
                                "train (train=True) or point out_dir at a trained model's folder")
    print(f"a released model: the training record of {shown_path(out / record)}, no checkpoint")
    return json.loads((out / record).read_text())


def _find(given: str | os.PathLike, preset: Preset, filename: str, param: str, what: str) -> Path | None:
    """``given`` if set (it must exist), else ``models/<preset>/filename``, else
    ``runs/<preset>/filename``, else None."""
    if str(given):
        path = project_path(given)
        if not (path.is_file() or (param == "dm_checkpoint" and path.is_dir())):
            raise FileNotFoundError(f"{param} {path} does not exist: pass the .pt file of {what}"
                                    f"{' (or a diffusers folder)' if param == 'dm_checkpoint' else ''}, "
                                    "or leave the parameter empty to use the committed one")
        return path
    for root in ("models", "runs"):
        path = project_path(Path(root) / preset.name / filename)
        if path.is_file():
            return path
    return None


def find_dm(dm_checkpoint: str | os.PathLike, preset: Preset) -> Path | None:
    """The DM checkpoint to use: ``dm_checkpoint`` if given (it must exist), else the
    committed ``models/<dataset>-<scale>/dm_ema.pt``, else ``runs/<dataset>-<scale>/dm_ema.pt``,
    else None."""
    return _find(dm_checkpoint, preset, "dm_ema.pt", "dm_checkpoint", "a trained DM")


def open_dm(path: Path, preset: Preset) -> DM:
    """The DM at ``path``: an hdisc or guided-diffusion ``.pt`` file is checked against the
    preset's UNet, a diffusers folder brings its own configuration."""
    return load_dm(path, None if path.is_dir() else preset.unet)


USE_SETTINGS = ("K", "S", "M", "t_stop", "clip", "shift_norm", "shift_rms")
"""The discovery settings that decide what a direction model's edits are."""


class Trained(NamedTuple):
    """What :func:`open_trained` returns."""

    preset: Preset
    unet: DM
    model: DiscoveryModel
    cfg: DiscoveryConfig
    """The direction model's settings (the preset's, or the file's with ``settings="file"``)."""
    files: dict[str, Path]
    """{"dm": path, "directions": path}: what a chapter's record names (:func:`write_record`)."""


def open_trained(dataset: str, preset: str, directions: str | os.PathLike = "",
                 dm_checkpoint: str | os.PathLike = "", device: str | torch.device = "cpu",
                 settings: str = "preset") -> Trained:
    """What every chapter after training needs: the preset, the DM, the direction model and
    the paths of both files.

    Paths default as in :func:`find_dm` (``directions.pt`` for the directions). A missing
    model raises and names the notebook that makes it. A direction model whose edit settings
    (:data:`USE_SETTINGS`: K, S, M, t_stop, ...) differ from the preset's raises and names
    them, unless ``settings="file"``: then the file's settings are used and the returned
    config (which every chapter records) is the file's.
    """
    if settings not in ("preset", "file"):
        raise ValueError(f"settings must be 'preset' or 'file', got {settings!r}")
    cfg = get_preset(dataset, preset)
    dm_path = find_dm(dm_checkpoint, cfg)
    if dm_path is None:
        raise FileNotFoundError(f"no DM for {cfg.name}: run experiments/train_dm.ipynb first "
                                f"(papermill experiments/train_dm.ipynb out.ipynb -p dataset {dataset} "
                                f"-p preset {preset}), or pass dm_checkpoint")
    dir_path = _find(directions, cfg, "directions.pt", "directions", "a trained direction model")
    if dir_path is None:
        raise FileNotFoundError(f"no direction model for {cfg.name}: run experiments/train.ipynb first "
                                f"(papermill experiments/train.ipynb out.ipynb -p dataset {dataset} "
                                f"-p preset {preset}), or pass directions")
    unet = open_dm(dm_path, cfg)
    model, dcfg = load_directions(dir_path, dm=unet)
    differ = {f: {"file": getattr(dcfg, f), "preset": getattr(cfg.discovery, f)} for f in USE_SETTINGS
              if getattr(dcfg, f) != getattr(cfg.discovery, f)}
    if differ and settings == "preset":
        raise ValueError(f"{shown_path(dir_path)} was trained with other settings than the {cfg.name} preset: "
                         f"{differ}. Pass the directions of this preset, or settings='file' (notebooks: -p "
                         "settings file) to use the file's settings deliberately.")
    if differ:
        print(f"using the file's settings, not the preset's: {differ}")
    print(f"DM: {shown_path(dm_path)}\ndirections: {shown_path(dir_path)} ({dcfg})")
    return Trained(cfg, unet.to(device), model.to(device), dcfg, {"dm": dm_path, "directions": dir_path})
