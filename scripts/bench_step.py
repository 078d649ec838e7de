"""What makes a cpu-preset training step cheaper on this machine? (issue 32)

    python scripts/bench_step.py [repeats=N]

Times, in one run on one machine, each setting in a fresh process (:mod:`hdisc.bench`):

- the cpu mnist32 discovery step (its batch, M and K, the committed DM) as it was (float32,
  the flat-memory chain: budget 0) and with each change alone and together: bfloat16
  autocast (:mod:`hdisc.precision`) and the memory-budgeted chain (``budget="auto"``);
- the DM pretraining step of the mnist32 and shapes32 cpu presets in float32, in bfloat16
  autocast, with ``torch.compile`` (inductor) and with ``channels_last``.

Writes results/mnist32-cpu/step_speed.json with the CPU's model name and bfloat16 flags
and the load average at the start (a second process on the other core slows both).
"""

from __future__ import annotations

import os
import sys

import torch
from bench_precision import cpu_facts

from hdisc.bench import measure_in_subprocess
from hdisc.files import project_path, shown_path, write_json
from hdisc.presets import get_preset
from hdisc.runs import find_dm

DISCOVERY = (("float32", "chain", 0.0), ("float32", "budget", "auto"), ("bfloat16", "chain", 0.0),
             ("bfloat16", "budget", "auto"))
DM = ((False, False, "float32"), (False, False, "bfloat16"), (True, False, "bfloat16"), (False, True, "bfloat16"))


def main(*args: str) -> None:
    opts = dict(a.split("=", 1) for a in args)
    repeats = int(opts.get("repeats", 2))
    preset = get_preset("mnist32", "cpu")
    dm = str(find_dm("", preset))
    load = os.getloadavg()[0]
    discovery = []
    for precision, method, share in DISCOVERY:
        discovery.append(measure_in_subprocess(
            {"dataset": "mnist32", "scale": "cpu", "method": method, "share": share, "M": preset.discovery.M,
             "batch": preset.discovery.batch, "repeats": repeats, "dm": dm, "device": "cpu",
             "precision": precision}, timeout=3600))
        print(discovery[-1], flush=True)
    dm_rows = []
    for dataset in ("mnist32", "shapes32"):
        for compiled, channels_last, precision in DM:
            dm_rows.append({"dataset": dataset, **measure_in_subprocess(
                {"kind": "dm", "dataset": dataset, "scale": "cpu", "batch": get_preset(dataset, "cpu").dm.batch,
                 "repeats": repeats + 2, "precision": precision, "compile": compiled,
                 "channels_last": channels_last}, timeout=3600)})
            print(dm_rows[-1], flush=True)
    before = discovery[0]["step_s"]
    for row in discovery:
        row["speedup"] = before / row["step_s"]
    for dataset in ("mnist32", "shapes32"):
        rows = [r for r in dm_rows if r["dataset"] == dataset]
        for row in rows:
            row["speedup"] = rows[0]["step_s"] / row["step_s"]
    record = {"what": "seconds per training step, each setting in a fresh process, one thread; speedup against "
                      "the first row of its kind (float32, flat-memory chain / eager float32)",
              **cpu_facts(), "threads": torch.get_num_threads(), "load_average_at_start": load,
              "torch": torch.__version__, "discovery": {"dataset": "mnist32", "preset": "cpu", "M": preset.discovery.M,
                                                         "batch": preset.discovery.batch, "rows": discovery},
              "dm": dm_rows}
    out = project_path("results/mnist32-cpu/step_speed.json")
    write_json(out, record)
    print(f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
