"""Folder datasets: today's in-process reading against the streaming DataLoader and the resized cache.

    python scripts/bench_folder.py [N_IMAGES] [OUT_JSON]

Writes N_IMAGES (default 10,000) random 128-px JPEGs to a temporary folder, then measures,
for DM training batches of 32 at 128 px (the celebahq128 / afhq128 presets' size): images per
second of (a) ``random_batch`` decoding and resizing in the training process, (b)
``streamed_batches`` with 1 worker process (on 2 cores: one trains, one decodes), (c) a
one-time ``CachedImages`` build and (d) reading the cache; each with the peak resident
memory of the process and of its children. Writes JSON (default
results/bench_folder.json).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hdisc.data import CachedImages, ImageFolder, random_batch, streamed_batches
from hdisc.files import project_path, write_json
from hdisc.runs import environment

BATCH, SIZE, STEPS = 32, 128, 60


def peak_mb() -> dict[str, float]:
    """Peak resident memory so far, MB: this process and its (waited-for) children."""
    return {"self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def rate(batches) -> float:
    """Images per second over STEPS batches."""
    start = time.perf_counter()
    n = sum(len(next(batches)) for _ in range(STEPS))
    return n / (time.perf_counter() - start)


def main(n: int = 10_000, out: str = "results/bench_folder.json") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        gen = np.random.default_rng(0)
        for i in range(n):  # 160 x 144 photos-to-be: cropped to a square and resized to 128 on reading
            Image.fromarray(gen.integers(0, 256, (144, 160, 3), dtype=np.uint8)).save(root / f"{i:05d}.jpg", quality=90)
        folder = ImageFolder(root, SIZE)

        def gen_for(step: int) -> torch.Generator:
            return torch.Generator().manual_seed(step)

        rows = []
        in_process = (random_batch(folder, BATCH, gen_for(s)) for s in range(STEPS))
        rows.append({"loader": "random_batch in the training process (before)", "img_per_s": rate(in_process),
                     **peak_mb()})
        stream = streamed_batches(folder, BATCH, range(STEPS), gen_for, workers=1)
        rows.append({"loader": "streamed_batches, 1 worker process", "img_per_s": rate(stream), **peak_mb()})
        del stream
        start = time.perf_counter()
        cache = CachedImages(folder, Path(tmp) / "cache.npy", workers=1)
        build_s = time.perf_counter() - start
        rows.append({"loader": "CachedImages: one-time build, 1 worker", "img_per_s": n / build_s, "build_s": build_s,
                     **peak_mb()})
        cached = (random_batch(cache, BATCH, gen_for(s)) for s in range(STEPS))
        rows.append({"loader": "random_batch from the cache", "img_per_s": rate(cached), **peak_mb()})
    for r in rows:
        print(f"{r['loader']:45s} {r['img_per_s']:9.1f} img/s  peak {r['self_mb']:.0f} MB (+ children "
              f"{r['children_mb']:.0f} MB)")
    write_json(project_path(out), {"n_images": n, "source_px": [160, 144], "size": SIZE, "batch": BATCH,
                                   "steps": STEPS, "rows": rows, "environment": environment(),
                                   "note": "peak memory is cumulative over the rows, in the order run"})


if __name__ == "__main__":
    main(*(int(a) if i == 0 else a for i, a in enumerate(sys.argv[1:])))
