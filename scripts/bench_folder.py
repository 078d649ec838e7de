"""Folder datasets: today's in-process reading against the streaming DataLoader and the resized cache.

    python scripts/bench_folder.py [N_IMAGES] [OUT_JSON]

Writes N_IMAGES (default 10,000) random 128-px JPEGs to a temporary folder, then measures,
for DM training batches of 32 at 128 px (the celebahq128 / afhq128 presets' size): images per
second of (a) ``random_batch`` decoding and resizing in the training process, (b)
``streamed_batches`` with 1 worker process (on 2 cores: one trains, one decodes), (c) a
one-time ``CachedImages`` build and (d) reading the cache. (a), (b) and (d) are measured
twice: reading alone, and with a stand-in training step per batch (a fixed matrix workload
on one thread, about as long as decoding a batch), which a worker can overlap and the
training process cannot. Peak resident memory of the process and of its (finished)
children. Writes JSON (default results/bench_folder.json).
"""

from __future__ import annotations

import gc
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


def train_step() -> None:
    """A stand-in for a training step: 40 products of 512 x 512 matrices."""
    a = torch.ones(512, 512)
    for _ in range(40):
        a = (a @ a).clamp(max=1.0)


def rate(batches, step: bool = False) -> float:
    """Images per second over STEPS batches, with a stand-in training step after each if ``step``."""
    start = time.perf_counter()
    n = 0
    for _ in range(STEPS):
        n += len(next(batches))
        if step:
            train_step()
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

        torch.set_num_threads(1)
        start = time.perf_counter()
        for _ in range(5):
            train_step()
        step_ms = (time.perf_counter() - start) / 5 * 1000
        rows = []
        for label, make in (("random_batch in the training process (before)",
                             lambda: (random_batch(folder, BATCH, gen_for(s)) for s in range(STEPS))),
                            ("streamed_batches, 1 worker process",
                             lambda: streamed_batches(folder, BATCH, range(STEPS), gen_for, workers=1))):
            alone, with_step = rate(make()), rate(make(), step=True)
            gc.collect()  # finished loaders' workers exit, so their memory counts under children
            rows.append({"loader": label, "img_per_s": alone, "img_per_s_with_step": with_step, **peak_mb()})
        start = time.perf_counter()
        cache = CachedImages(folder, Path(tmp) / "cache.npy", workers=1)
        build_s = time.perf_counter() - start
        rows.append({"loader": "CachedImages: one-time build, 1 worker", "img_per_s": n / build_s, "build_s": build_s,
                     **peak_mb()})
        rows.append({"loader": "random_batch from the cache",
                     "img_per_s": rate(random_batch(cache, BATCH, gen_for(s)) for s in range(STEPS)),
                     "img_per_s_with_step": rate((random_batch(cache, BATCH, gen_for(s)) for s in range(STEPS)),
                                                 step=True), **peak_mb()})
    for r in rows:
        print(f"{r['loader']:45s} {r['img_per_s']:9.1f} img/s alone, {r.get('img_per_s_with_step', 0):7.1f} with "
              f"a step; peak {r['self_mb']:.0f} MB (+ children {r['children_mb']:.0f} MB)")
    write_json(project_path(out), {"n_images": n, "source_px": [160, 144], "size": SIZE, "batch": BATCH,
                                   "steps": STEPS, "stand_in_step_ms": step_ms, "rows": rows,
                                   "environment": environment(),
                                   "note": "peak memory is cumulative over the rows, in the order run"})


if __name__ == "__main__":
    main(*(int(a) if i == 0 else a for i, a in enumerate(sys.argv[1:])))
