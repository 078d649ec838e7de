"""Does bfloat16 autocast make a discovery step cheaper on this machine? (issue 11)

    python scripts/bench_precision.py [BATCH ...] [repeats=N] [rounds=N]

Times full discovery steps of the cpu mnist32 preset (its M and K, the committed DM, chain
backprop) in float32 and in bfloat16 (:mod:`hdisc.precision`), each setting in a fresh
process (:func:`hdisc.bench.measure`), the two precisions alternating for ``rounds`` rounds
so that both see the same machine load. Also measures the chain's gradient agreement with
vanilla autograd at each precision. Writes results/mnist32-cpu/precision.json with the CPU's
model name, whether it has native bfloat16 instructions, the thread count and the load
average at the start, since all of these decide the answer: the record keeps one entry per
kind of CPU (model name and bfloat16 flags), so a run on another machine adds its entry beside
the others, and :func:`hdisc.precision.resolve_precision` chooses by the flag that tells them apart.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

from hdisc.bench import gradient_agreement, measure_in_subprocess
from hdisc.files import project_path, shown_path, write_json
from hdisc.precision import cpu_flags
from hdisc.presets import get_preset
from hdisc.runs import find_dm

WHAT = ("seconds per discovery step (chain backprop, median of every timed step) in float32 and bfloat16 autocast, "
        "cpu mnist32 preset, committed DM; one entry per kind of CPU")


def cpu_facts() -> dict:
    """The CPU's model name and bfloat16 instruction flags (Linux /proc/cpuinfo)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.processor())
    return {"cpu": name, "bf16_flags": sorted(f for f in cpu_flags() if "bf16" in f)}


def machines_of(path: Path) -> list[dict]:
    """The per-machine entries of an existing record (a record of one machine, as first written, is one entry)."""
    if not path.is_file():
        return []
    record = json.loads(path.read_text())
    if "machines" in record:
        return record["machines"]
    return [{k: v for k, v in record.items() if k != "what"}]


def main(*args: str) -> None:
    batches = [int(a) for a in args if "=" not in a] or [16, 64]
    opts = dict(a.split("=", 1) for a in args if "=" in a)
    repeats, rounds = int(opts.get("repeats", 2)), int(opts.get("rounds", 2))
    preset = get_preset("mnist32", "cpu")
    dm = str(find_dm("", preset))
    load = os.getloadavg()[0]
    rows = []
    for batch in batches:
        for _ in range(rounds):
            for precision in ("float32", "bfloat16"):
                rows.append(measure_in_subprocess(
                    {"dataset": "mnist32", "scale": "cpu", "method": "chain", "M": preset.discovery.M, "batch": batch,
                     "repeats": repeats, "dm": dm, "device": "cpu", "precision": precision}, timeout=3600))
                print(rows[-1], flush=True)
    summary = []
    for batch in batches:
        med = {p: statistics.median(t for r in rows if r["batch"] == batch and r["precision"] == p
                                    for t in r["step_times_s"]) for p in ("float32", "bfloat16")}
        summary.append({"batch": batch, "float32_step_s": med["float32"], "bfloat16_step_s": med["bfloat16"],
                        "speedup": med["float32"] / med["bfloat16"]})
    grads = {p: gradient_agreement("mnist32", "cpu", preset.discovery.M, 4, dm=dm, precision=p)
             for p in ("float32", "bfloat16")}
    entry = {"M": preset.discovery.M, "K": preset.discovery.K, **cpu_facts(),
             "threads": torch.get_num_threads(), "load_average_at_start": load, "torch": torch.__version__,
             "summary": summary, "chain_vs_vanilla_max_rel_grad_diff": grads, "rows": rows,
             "command": "python scripts/bench_precision.py " + " ".join(args)}
    out = project_path("results/mnist32-cpu/precision.json")
    others = [m for m in machines_of(out) if (m["cpu"], m["bf16_flags"]) != (entry["cpu"], entry["bf16_flags"])]
    write_json(out, {"what": WHAT, "machines": [*others, entry]})
    print(summary, grads, f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
