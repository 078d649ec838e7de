"""Pretrain a DM from the command line, in one process or in several under torchrun.

    python -m hdisc.pretrain --dataset mnist32 --preset cpu
    torchrun --nproc_per_node 4 -m hdisc.pretrain --dataset celebahq128 --preset paper \\
        --data-dir /data/celeba_hq/train --cache /data/celebahq128.npy --workers 4 --device cuda

The preset's global batch is split over the processes (:mod:`hdisc.distributed`); rank 0
writes ``dm_checkpoint.pt`` and ``dm_ema.pt`` into ``--out`` (default
``runs/<dataset>-<preset>``), and the run resumes there with the same command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .data import open_dataset
from .distributed import distributed
from .precision import CHOICES
from .presets import DATASETS, SCALES, get_preset
from .runs import resolve_device, run_dir
from .training import train_dm


def training_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every training command line shares: dataset, preset, output folder,
    step count, seed and device."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--dataset", choices=DATASETS, required=True)
    p.add_argument("--preset", choices=SCALES, default="cpu")
    p.add_argument("--out", default="", help="output folder, relative to the working directory (default "
                   "runs/<dataset>-<preset> in the checkout)")
    p.add_argument("--steps", type=int, default=None, help="override the preset's step count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return p


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (default: the command line), train, return train_dm's summary."""
    p = training_parser("python -m hdisc.pretrain", __doc__.splitlines()[0])
    p.add_argument("--data-dir", default="", help="folder of training images (not for mnist32)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader processes decoding folder images")
    p.add_argument("--cache", default="", help="a .npy file: decode and resize the folder once into it")
    p.add_argument("--precision", choices=CHOICES, default="float32",
                   help="float32 (default), bfloat16 autocast, or auto (bfloat16 on a CPU with AMX tiles); check a "
                        "DM's noise prediction at t near T with research/high_t.py")
    args = p.parse_args(argv)
    preset = get_preset(args.dataset, args.preset)
    out = Path(args.out).resolve() if args.out else ""  # --out is relative to the working directory
    try:
        chosen = resolve_device(args.device)
    except ValueError as e:
        p.error(str(e))
    rank, _, device = distributed(chosen)
    dataset = open_dataset(preset.data, args.data_dir or None, cache=args.cache or None, workers=args.workers)
    summary = train_dm(preset.unet, preset.dm, dataset, run_dir(out, preset), seed=args.seed, steps=args.steps,
                       device=device, workers=args.workers, progress=None if rank == 0 else False,
                       precision=args.precision)
    if rank == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "loss_curve"}))
    return summary


if __name__ == "__main__":
    main()
