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

# %% tags=["hide-input"]

# %% [markdown]
# # Reconstructor accuracy and mean opinion score (paper section 5.5)
#
# **RCA**: the trained reconstructor's accuracy at telling the direction $k$ from a pair
# $(x_0, x'_0)$ made from fresh noise with random $k$ and $s$. High RCA means the
# directions change different things. Chance is $1/K$.
#
# **MOS**: a user study. For every direction an assessor sees several examples, each
# across strengths from $-S$ to $S$, and marks it 1 only if every example changes
# smoothly, the change is the same in every example, and it is easy to name; else 0. The
# MOS is the mean of all marks. The widget below saves each assessor's marks as one JSON
# file in `mos_dir`; this chapter reports a MOS only from such files.
#
# **MOS proxy** (`hdisc.mos_proxy`): what the raters check, read by measures: realistic at
# every strength, smooth, the same change in every example (in a space of stroke measures
# and class log-probabilities) and nameable (one stroke measure, or one target class).
# Its thresholds are set on random directions at equal image change so that they pass at
# most about 10%; a second random set, scored out of sample, is the floor. The sweeps
# behind it take about an hour here, so the chapter reads its record
# (`research/mos_proxy.py` makes it) when that was computed from these model files.

# %% tags=["parameters"]
dataset = "mnist32"
preset = "cpu"
directions = ""
settings = "preset"  # "file": use a direction model trained with other K, S, M, t_stop deliberately
dm_checkpoint = ""
out_dir = ""
mos_dir = ""  # default: results/<dataset>-<preset>/mos (committed annotation files)
assessor = ""  # your name: shows the annotation widget (run this notebook in JupyterLab)
seed = 0
n_rca = 1000  # fresh pairs
n_examples = 4  # examples per direction in the MOS panels
device = "auto"

# %% tags=["hide-input"]
from hdisc.chapter import typed_parameters

typed_parameters("rca_mos", globals())

# %% tags=["hide-input"]
import dataclasses
import json

import torch
from IPython.display import Image, Markdown, display

from hdisc.direction_set import DirectionSet, strengths
from hdisc.discovery import reconstructor_accuracy
from hdisc.files import project_path, shown_path
from hdisc.metrics import mos
from hdisc.mos_proxy import from_record, kappa
from hdisc.report import PAPER
from hdisc.runs import computed_from, open_trained, resolve_device, run_dir, write_record
from hdisc.viz import grid, png_bytes
from hdisc.widgets import MosAnnotator

dev = resolve_device(device)
cfg, unet, model, d, files = open_trained(dataset, preset, directions, dm_checkpoint, dev, settings)
out = run_dir(out_dir, cfg)
dirs = DirectionSet.of(model.shift, d, unet)
paper = (PAPER["rca"][dataset], PAPER["mos"][dataset])

# %% [markdown]
# ## RCA

# %% tags=["hide-input"]
rca = reconstructor_accuracy(unet, model, d, dirs.steps, n_rca, d.batch, torch.Generator().manual_seed(seed),
                             device=dev)
print(f"RCA {rca['rca']:.3f} on {n_rca} pairs (chance {1 / d.K:.3f}); "
      f"paper {paper[0]} at its own preset; mean |s_hat - s| {rca['mag_err']:.3f}")

# %% [markdown]
# The reconstructor trained on $|s| \ge$ `s_min` (the cpu preset: 1); the paper draws
# $s$ uniform in $[-S, S]$ and scores it so. Near $s = 0$ an edit is nearly invisible, so
# the paper's form reads lower whenever `s_min` > 0.

# %% tags=["hide-input"]
uniform = rca if d.s_min == 0 else reconstructor_accuracy(
    unet, model, dataclasses.replace(d, s_min=0.0), dirs.steps, n_rca, d.batch,
    torch.Generator().manual_seed(seed), device=dev)
print(f"RCA with s uniform in [-S, S] (the paper's form): {uniform['rca']:.3f}")

# %% [markdown]
# ## MOS
# The panels an assessor marks: one per direction, a row per example, strengths $-S$
# to $S$ left to right. Set `assessor` to your name to mark them here; without it they are
# shown read-only.

# %% tags=["hide-input"]
shape = (unet.in_channels, unet.image_size, unet.image_size)
z = torch.randn((n_examples, *shape), generator=torch.Generator().manual_seed(seed + 1)).to(dev)
svals = strengths(d.S, 5)
panels = {k: grid(dirs.sweep(unet, z, k, svals).flatten(0, 1), nrow=len(svals))
          for k in range(d.K)}
mos_path = project_path(mos_dir or f"results/{cfg.name}/mos")
model_id = f"{cfg.name}:{d.K}-{d.S:g}-{d.M}-{d.t_stop}"
if assessor:
    display(MosAnnotator(panels, mos_path, assessor, model_id))
else:  # the same panels, read-only: set `assessor` to mark them
    for k, panel in panels.items():
        display(Markdown(f"direction {k}"), Image(png_bytes(panel, 2)))

# %% tags=["hide-input"]
mos_files = sorted(mos_path.glob("*.json")) if mos_path.is_dir() else []
score = mos(mos_files)
if score is None:
    print(f"No MOS: no annotation files in {shown_path(mos_path)}. None were collected for this run, so the book "
          "reports none.")
else:
    print(f"MOS {score['mos']:.3f} from {len(score['assessors'])} assessors, {score['n_marks']} marks "
          f"(paper {paper[1]})")

# %% [markdown]
# ## MOS proxy
# From `mos_proxy.json` (`python research/mos_proxy.py`), when it was made from these model
# files; with human marks, their agreement with it (Cohen's kappa).

# %% tags=["hide-input"]
proxy_path = project_path(f"results/{cfg.name}/mos_proxy.json")
proxy = json.loads(proxy_path.read_text()) if proxy_path.is_file() else None
proxy = from_record(proxy) if proxy and computed_from(proxy, files) else None
if proxy is None:
    print(f"No MOS proxy for these models: run python research/mos_proxy.py (about an hour on one core) to make "
          f"{shown_path(proxy_path)}")
else:
    if score is not None:
        proxy["mos_proxy_kappa"] = kappa(score["per_direction"], proxy["mos_proxy_passing"], d.K)
    print(f"MOS proxy {proxy['mos_proxy']:.3f} (95% interval {proxy['mos_proxy_interval']}), "
          f"{proxy['distinct_nameable']} distinct nameable effects; random directions at equal change "
          f"{proxy['mos_proxy_random']:.3f} (paper MOS {paper[1]})")

# %% tags=["hide-input"]
write_record(out / "rca_mos.json", {"dataset": dataset, "preset": preset, "K": d.K, "rca": rca["rca"], "rca_n": n_rca,
                                    "s_min": d.s_min, "rca_uniform_s": uniform["rca"],
                                    "mag_err": rca["mag_err"], "chance": 1 / d.K, "paper_rca": paper[0],
                                    "mos": score, "paper_mos": paper[1], **(proxy or {}), "seed": seed}, files)
print(f"wrote {shown_path(out / 'rca_mos.json')}")


# %% [markdown]
# ## What this shows
# Generated from this chapter's record (`rca_mos.json`), so the numbers are this run's.

# %% tags=["hide-input"]
import json

from IPython.display import Markdown, display

from hdisc.prose import what_this_shows

display(Markdown(what_this_shows("rca_mos", json.loads((out / "rca_mos.json").read_text()))))
