"""Files: never left half-written (write to a temporary file, then rename), read only as
tensors and plain containers, and named relative to the project root."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import torch


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, rename it over ``path``.

    A kill at any moment leaves either the old file or the new one, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are ordinary files
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise OSError(e.errno, f"no space left on the device writing {path}: free some space and run again; "
                                   f"{path} was not changed") from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


LOCK = ".hdisc.lock"
"""The file in a run folder that its owner holds locked (``fcntl.flock``) while it runs."""


@contextmanager
def own_run_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Own the run folder ``path`` for one run, before any work starts: create it, refuse
    with a named error when it cannot be written or when another run holds it, remove the
    temporary files that killed writes left (:func:`atomic_write`'s ``.NAME.*.tmp``), and
    release it on exit. The lock is the kernel's: a killed run holds nothing."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle = open(path / LOCK, "a+")  # noqa: SIM115 (held open for the lock's lifetime)
    except OSError as e:
        raise PermissionError(f"run folder {path} cannot be written ({e.strerror}): choose an out_dir you can "
                              "write to; nothing was started") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RuntimeError(f"run folder {path} is in use by another run (it holds {path / LOCK}): wait for that run "
                           "to end, or choose another out_dir; nothing was started") from None
    try:
        for stale in path.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as e:
            raise PermissionError(f"run folder {path} cannot be written ({e.strerror}): choose an out_dir you can "
                                  "write to; nothing was started") from None
        yield path
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def atomic_save(obj: object, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def load_or_train(path: str | os.PathLike, module: torch.nn.Module, train: Callable[[], torch.nn.Module],
                  what: str) -> torch.nn.Module:
    """``module`` with the state dict at ``path`` (``what`` names it in errors), in eval mode;
    if the file is absent, ``train()``'s module, saved there first."""
    path = Path(path)
    if path.exists():
        module.load_state_dict(load_file(path, what))
        return module.eval()
    module = train()
    atomic_save(module.state_dict(), path)
    return module.eval()


SIGNIFICANT = 6
"""Significant digits a record keeps of each float."""


def _rounded(value: object) -> object:
    """``value`` with every float rounded to :data:`SIGNIFICANT` significant digits (containers
    walked), so a rerun whose arithmetic differs only in the last bits writes the same bytes."""
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT}g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def write_json(path: str | os.PathLike, record: dict) -> Path:
    """``record`` as indented JSON at ``path``, atomically, floats rounded to
    :data:`SIGNIFICANT` significant digits."""
    text = json.dumps(_rounded(record), indent=2, default=str) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex; of a folder (a diffusers model), of each file's
    relative name and hash in name order."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{f.relative_to(path).as_posix()}:{sha256(f)}\n".encode())
        return digest.hexdigest()
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def load_file(path: str | os.PathLike, what: str, keys: tuple[str, ...] = ()) -> dict:
    """Read ``path`` with ``torch.load(weights_only=True)``: tensors and plain containers
    only, never arbitrary pickled objects. It must hold a dict with ``keys``; anything else
    (a list, another program's pickle, a file that is not a torch file) raises a ValueError
    that names the file and ``what`` was expected."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        text = str(e).strip()
        code = re.search(r"Unsupported global: GLOBAL [\w.]+", text)
        # torch's own text advises loading with weights_only=False: only its finding is quoted
        if code:
            reason = f"it holds code ({code.group(0).split()[-1]})"
        elif text.startswith("Weights only load failed"):
            after = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else ""
            reason = next((line.strip() for line in after.splitlines() if line.strip()), "not a file of tensors")
        else:
            reason = text.splitlines()[0] if text else type(e).__name__
        raise ValueError(f"{path} is not a {what} that hdisc can read: {reason[:200]}. hdisc reads only "
                         "tensors and plain containers (weights_only=True) and never unpickles code: "
                         f"pass the {what} file that hdisc wrote") from None
    missing = [k for k in keys if not (isinstance(blob, dict) and k in blob)]
    if missing or not isinstance(blob, dict):
        held = f"a dict with keys {sorted(map(str, blob))[:8]}" if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path} is not a {what}: it holds {held}, without {missing}; "
                         f"pass the {what} file that hdisc wrote")
    return blob


def project_path(path: str | os.PathLike) -> Path:
    """``path`` as given if absolute, else relative to the project root.

    The root is the checkout that holds this package (``experiments/`` beside it), so a
    notebook finds ``models/`` and ``runs/`` whatever folder it is executed in; for an
    installed copy without a checkout, the current directory.
    """
    path = Path(path)
    if path.is_absolute():
        return path
    return _root() / path


def _root() -> Path:
    here = Path(__file__).resolve().parents[1]
    return here if (here / "experiments").is_dir() else Path.cwd()


def shown_path(path: str | os.PathLike) -> str:
    """``path`` relative to the project root when it lies inside it (so that committed
    records name no machine's folders), else absolute."""
    path = Path(path).resolve()
    try:
        return path.relative_to(_root().resolve()).as_posix()
    except ValueError:
        return str(path)
