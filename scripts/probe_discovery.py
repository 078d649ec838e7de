"""Short discovery runs that ask which setting makes learning start sooner (issue 3, item 7).

    python scripts/probe_discovery.py NAME [field=value ...] [clip=true|false] [head_init_std=F]

Fields are DiscoveryConfig's (M, batch, steps, lr, lambda_adv, ...) over the cpu mnist32
preset. Trains into runs/probe/NAME (resumable), then writes runs/probe/NAME/probe.json with
the logged curve and the RCA on 256 fresh pairs.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from hdisc.backbone import load_unet
from hdisc.discovery import reconstructor_accuracy
from hdisc.files import write_json
from hdisc.presets import get_preset
from hdisc.runs import find_dm, project_path
from hdisc.schedule import ddim_steps
from hdisc.training import load_directions, train_discovery


def main(name: str, *overrides: str) -> None:
    preset = get_preset("mnist32", "cpu")
    extra = {"clip": True, "head_init_std": 0.0}
    fields = {}
    for item in overrides:
        key, value = item.split("=", 1)
        if key == "clip":
            extra["clip"] = value.lower() == "true"
        elif key == "head_init_std":
            extra["head_init_std"] = float(value)
        else:
            kind = type(getattr(preset.discovery, key))
            fields[key] = kind(float(value)) if kind is int else kind(value)
    cfg = dataclasses.replace(preset.discovery, **fields)
    unet, _ = load_unet(find_dm("", preset), preset.unet)
    out = project_path("runs/probe") / name
    result = train_discovery(unet, preset.unet, cfg, out, progress=True, log_every=10, **extra)
    model, _ = load_directions(out / "directions.pt")
    rca = reconstructor_accuracy(unet, model, cfg, ddim_steps(cfg.M), 256, 32, torch.Generator().manual_seed(1),
                                 clip=extra["clip"])
    write_json(out / "probe.json", {"name": name, "config": dataclasses.asdict(cfg), **extra, **rca,
                                    "wall_s": result["wall_s"], "log": result["log"]})
    print(name, rca, f"{result['wall_s']:.0f}s")


if __name__ == "__main__":
    main(*sys.argv[1:])
