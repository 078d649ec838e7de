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

# %%
import json

import matplotlib.pyplot as plt

from hdisc.bench import gradient_agreement, run_grid
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

# %%
if from_record:
    old = json.loads(project_path(from_record).read_text())
    print(f"drawn from {from_record} (measured on {old['environment']}), not measured again")
    rows, skipped, batch, Ms, dev = old["rows"], old["skipped"], old["batch"], old["Ms"], old["device"]
else:
    rows, skipped = run_grid(dataset, preset, Ms, batch, memory_budget_mb, repeats=repeats, dm=dm, device=dev)
for r in rows:
    print(f"{r['method']:8s} M={r['M']:3d}  peak {r['peak_mb']:8.0f} MB  {r['img_per_s']:7.2f} img/s")
for s in skipped:
    print(f"skipped vanilla M={s['M']}: predicted {s['predicted_mb']:.0f} MB > budget {memory_budget_mb} MB")

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for method, marker in (("vanilla", "o"), ("chain", "s")):
    rs = [r for r in rows if r["method"] == method]
    axes[0].plot([r["M"] for r in rs], [r["peak_mb"] for r in rs], marker=marker, label=method)
    axes[1].plot([r["M"] for r in rs], [r["img_per_s"] for r in rs], marker=marker, label=method)
axes[0].set(xlabel="M (DDIM steps)", ylabel="peak memory (MB)", title=f"memory, batch {batch}, {dev}")
axes[1].set(xlabel="M (DDIM steps)", ylabel="images / s", title="throughput")
for ax in axes:
    ax.legend()
fig.tight_layout()

# %% [markdown]
# ## The two algorithms give the same gradients
# The shift block's gradient for one loss on $x'_0$, by both methods, at the smallest M.
# `step_time_ratio` is the time of a full training step with chain backprop over the
# same step with vanilla autograd (below 1: the chain is faster), at the largest M where
# both ran.

# %%
if from_record:
    grad_diff = old["grad_max_rel_diff"]
else:
    grad_diff = gradient_agreement(dataset, preset, min(Ms), min(batch, 4), dm=dm)
both = [M for M in Ms if {r["method"] for r in rows if r["M"] == M} == {"chain", "vanilla"}]
M_ratio = max(both)
t = {r["method"]: r["step_s"] for r in rows if r["M"] == M_ratio}
ratio = t["chain"] / t["vanilla"]
print(f"max relative gradient difference {grad_diff:.2e}; step time chain / vanilla at M={M_ratio}: {ratio:.2f}")

# %%
record = {"dataset": dataset, "preset": preset, "batch": batch, "Ms": Ms, "device": dev, "dm_checkpoint": dm_shown,
          "rows": rows, "skipped": skipped, "grad_max_rel_diff": grad_diff, "step_time_ratio": ratio,
          "step_time_ratio_M": M_ratio, "environment": old["environment"] if from_record else environment()}
write_record(out / "benchmark.json", record, {"dm": dm})
print(f"wrote {shown_path(out / 'benchmark.json')}")


# %% [markdown]
# ## What this shows
# Generated from this chapter's record (`benchmark.json`), so the numbers are this run's.

# %%
import json

from IPython.display import Markdown, display

from hdisc.prose import what_this_shows

display(Markdown(what_this_shows("benchmark", json.loads((out / "benchmark.json").read_text()))))
