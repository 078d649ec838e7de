"""Train directions (paper eq. 2) from the command line, in one process or several under torchrun.

    python -m hdisc.discover --dataset mnist32 --preset cpu
    torchrun --nproc_per_node 4 -m hdisc.discover --dataset celebahq128 --preset paper \\
        --dm /path/to/dm_ema.pt --device cuda

The DM is ``--dm`` (an hdisc or guided-diffusion ``.pt`` file, or a diffusers folder), else
the preset's committed or trained one. The preset's global batch is split over the
processes (:mod:`hdisc.distributed`); rank 0 writes ``discovery_checkpoint.pt`` and
``directions.pt`` into ``--out`` (default ``runs/<dataset>-<preset>``), and the run resumes
there with the same command and the same number of processes.
"""

from __future__ import annotations

import json
from pathlib import Path

from .chain import parse_budget
from .distributed import distributed
from .precision import CHOICES
from .presets import get_preset, override
from .pretrain import training_parser
from .runs import find_dm, open_dm, resolve_device, run_dir
from .training import train_discovery


def main(argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (default: the command line), train, return train_discovery's summary."""
    p = training_parser("python -m hdisc.discover", __doc__.splitlines()[0])
    p.add_argument("--dm", default="", help="the DM (default: the preset's committed or trained dm_ema.pt)")
    p.add_argument("--init-from", default="", help="a directions.pt to warm-start from")
    p.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                   help="override the preset's discovery settings, e.g. --set M=5 batch=16 (DiscoveryConfig's fields)")
    p.add_argument("--precision", choices=CHOICES, default="auto",
                   help="what the steps compute in (bfloat16: autocast, faster on some machines; auto: bfloat16 "
                        "on a CPU with AMX bfloat16 tiles, float32 elsewhere)")
    p.add_argument("--budget", default="auto",
                   help="memory in bytes the chain may keep graphs in instead of recomputing steps: auto (half the "
                        "free memory, the default), 0 (the paper's flat-memory chain), inf (all) or a number")
    args = p.parse_args(argv)
    preset = get_preset(args.dataset, args.preset)
    out = Path(args.out).resolve() if args.out else ""  # --out is relative to the working directory
    try:  # settings are checked before anything is loaded
        cfg = override(preset.discovery, args.set)
        budget = parse_budget(args.budget)
    except ValueError as e:
        p.error(str(e))
    dm = find_dm(args.dm, preset)
    if dm is None:
        p.error(f"no DM for {preset.name}: pass --dm, or pretrain one (python -m hdisc.pretrain --dataset "
                f"{args.dataset} --preset {args.preset})")
    try:
        chosen = resolve_device(args.device)
    except ValueError as e:
        p.error(str(e))
    rank, _, device = distributed(chosen)
    unet = open_dm(dm, preset)
    summary = train_discovery(unet, cfg, run_dir(out, preset), seed=args.seed,
                              steps=args.steps, init_from=args.init_from or None, device=device,
                              precision=args.precision, budget=budget,
                              progress=None if rank == 0 else False)
    if rank == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "log"}))
    return summary


if __name__ == "__main__":
    main()
