# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Benchmark: back-propagating through the whole sampling chain
#
# The paper's section 5.1 (its figure 4): training "MNIST32-400-$M$-32-5" with vanilla
# autograd, which keeps every DDIM step's activations until the backward pass, against
# the node-by-node algorithm (`hdisc.chain`), which records the M + 1 nodes without
# gradients and then recomputes and back-propagates one step at a time. The paper
# measured VRAM and throughput on RTX 3090s; this notebook measures whatever machine
# runs it: peak RSS of a fresh process per setting on a CPU, or
# `torch.cuda.max_memory_allocated` on a GPU. Each measured step is a full discovery
# training step (plain chain for $x_0$, shifted chain, reconstructor, discriminator); the
# chain method runs the plain chain and its no-grad recording pass as one batch.
#
# Between the two sits the memory-budgeted chain (`budget` rows): given a budget in bytes,
# it keeps the graphs of as many of the last steps as fit and recomputes only the others.
# With room for every step it should cost what vanilla costs; with room for half, its
# memory stays under its budget and its time under the chain's.

# %% tags=["parameters"]
dataset = "mnist32"
preset = "cpu"  # the DM architecture and K, S, t_stop come from this preset; M is varied
Ms = []  # DDIM step counts; empty: the paper's 5, 10, 20, 40, 80 (smoke: 2, 4, 8)
batch = 8
repeats = 2  # timed steps per setting, after one warm-up step
memory_budget_mb = 16000  # vanilla settings predicted above this are skipped
dm_checkpoint = ""  # default: the committed DM of the preset if any, else untrained weights
out_dir = ""  # default: runs/<dataset>-<preset>
from_record = ""  # a benchmark.json to draw instead of measuring again (the book's render-only mode)
seed = 0
device = "auto"

# %% tags=["hide-input"]
from hdisc.chapter import typed_parameters

typed_parameters("benchmark", globals())

# %% tags=["hide-input"]
import json

import matplotlib.pyplot as plt

from hdisc.bench import SERIES, benchmark_summary, run_grid, setting_of, setting_table
from hdisc.files import project_path, shown_path
from hdisc.presets import get_preset
from hdisc.runs import environment, find_dm, resolve_device, run_dir, write_record

cfg = get_preset(dataset, preset)
Ms = list(Ms) or ([2, 4, 8] if preset == "smoke" else [5, 10, 20, 40, 80])
out = run_dir(out_dir, cfg)
dev = str(resolve_device(device))
dm = find_dm(dm_checkpoint, cfg)
dm = str(dm) if dm else None
dm_shown = shown_path(dm) if dm else None
print(f"{cfg.name} on {dev}, batch {batch}, DM weights: {dm_shown or 'untrained (timing and memory only)'}")

# %% [markdown]
# ## Memory and throughput as M grows

# %% tags=["hide-input"]
if from_record:
    old = json.loads(project_path(from_record).read_text())
    print(f"drawn from {from_record} (measured on {old['environment']}), not measured again")
    rows, skipped, batch, Ms, dev = old["rows"], old["skipped"], old["batch"], old["Ms"], old["device"]
else:
    rows, skipped = run_grid(dataset, preset, Ms, batch, memory_budget_mb, repeats=repeats, dm=dm, device=dev)
print(setting_table(rows, skipped))

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for key, label, marker in SERIES:
    rs = [r for r in rows if setting_of(r) == key]
    axes[0].plot([r["M"] for r in rs], [r["peak_mb"] for r in rs], marker=marker, label=label)
    axes[1].plot([r["M"] for r in rs], [r["step_s"] for r in rs], marker=marker, label=label)
axes[0].set(xlabel="M (DDIM steps)", ylabel="peak memory (MB)", title=f"memory, batch {batch}, {dev}")
axes[1].set(xlabel="M (DDIM steps)", ylabel="seconds per step", title="time")
for ax in axes:
    ax.legend(fontsize=7)
fig.tight_layout()

# %% [markdown]
# ## Every method gives vanilla's gradients
# Each row's `grad_max_rel_diff` is the largest relative difference between its shift-block
# gradient and vanilla autograd's for one loss on $x'_0$ (batch 2, the same weights).
# The ratios compare a full training step's time, at the largest M where both ran.

# %% tags=["hide-input"]
summary = benchmark_summary(rows)
print(summary)

# %% tags=["hide-input"]
record = {"dataset": dataset, "preset": preset, "batch": batch, "Ms": Ms, "device": dev, "dm_checkpoint": dm_shown,
          "rows": rows, "skipped": skipped, **summary,
          "environment": old["environment"] if from_record else environment()}
write_record(out / "benchmark.json", record, {"dm": dm})
print(f"wrote {shown_path(out / 'benchmark.json')}")


# %% [markdown]
# ## What this shows
# Generated from this chapter's record (`benchmark.json`), so the numbers are this run's.

# %% tags=["hide-input"]
import json

from IPython.display import Markdown, display

from hdisc.prose import what_this_shows

display(Markdown(what_this_shows("benchmark", json.loads((out / "benchmark.json").read_text()))))
