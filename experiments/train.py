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
# # Training the discovery model
#
# The paper's eq. 2: from the same noise $z$, a plain DDIM chain gives $x_0$ and an
# asymmetric chain, whose h is shifted by $s \cdot f_\phi^k(h_t, t)$ for $t > t_{stop}$,
# gives $x'_0$. A reconstructor must tell $k$ and $s$ from the pair, a discriminator keeps
# $x'_0$ realistic, and the gradient reaches the shift block through the whole sampling
# chain, back-propagated node by node so that memory does not grow with the number of
# steps $M$ (section 4.4; `hdisc.chain`).
#
# A model is named like the paper's: dataset-$t_{stop}$-$M$-$K$-$S$.

# %% tags=["parameters"]
dataset = "mnist32"  # mnist32 | anime64 | celebahq128 | afhq128
preset = "cpu"  # paper | cpu | smoke
data_dir = ""  # images to pretrain a DM on, when no dm_checkpoint exists yet
dm_checkpoint = ""  # default: models/<dataset>-<preset>/dm_ema.pt, else runs/<dataset>-<preset>/dm_ema.pt
out_dir = ""  # default: runs/<dataset>-<preset>
seed = 0
train = True  # False: render out_dir as it is (its checkpoint, or a released model's weights and train.json)
steps = -1  # -1: the preset's
method = "chain"  # chain (node-by-node backprop) | vanilla (autograd through the chain)
budget = "auto"  # the chain's memory for kept graphs, in bytes: auto (half the free memory) | 0 (flat, the paper's)
clip = True  # clip the predicted x_0 to [-1, 1] in every DDIM step (part of the discovery config)
head_init_std = 0.0  # 0: the paper's zero-initialised heads (part of the discovery config)
init_from = ""  # a directions.pt to warm-start from (part of the run's identity; the committed model's lineage)
n_rca = 256  # fresh pairs for the final reconstructor accuracy
device = "auto"
precision = "auto"  # float32 | bfloat16 (autocast) | auto: bfloat16 on CPUs with AMX tiles (bench_precision.py)

# %% tags=["hide-input"]
from hdisc.chapter import typed_parameters

typed_parameters("train", globals())

# %% tags=["hide-input"]
import dataclasses
import json

import torch

from hdisc.chain import parse_budget
from hdisc.data import open_dataset
from hdisc.discovery import reconstructor_accuracy
from hdisc.files import project_path, shown_path
from hdisc.presets import departures, get_preset
from hdisc.report import PAPER
from hdisc.runs import find_dm, open_dm, released_record, resolve_device, run_dir, write_record
from hdisc.training import DISCOVERY_CHECKPOINT, checkpoint_step, load_directions, train_discovery, train_dm
from hdisc.viz import plot_curves, plot_points

cfg = get_preset(dataset, preset)
d = dataclasses.replace(cfg.discovery, clip=clip, head_init_std=head_init_std)
out = run_dir(out_dir, cfg)
dev = resolve_device(device)
name = f"{dataset.upper()}-{d.t_stop}-{d.M}-{d.K}-{d.S:g}"
print(f"{name} ({cfg.name}), {d}\nwriting to {shown_path(out)}")
print("departures from the paper:", departures(cfg) or "none")

# %% [markdown]
# ## The pretrained DM
# The committed cpu MNIST DM by default; any guided-diffusion checkpoint or diffusers
# `save_pretrained` folder through `dm_checkpoint`. With neither, a DM is pretrained here from `data_dir` first
# (`experiments/train_dm.ipynb` does the same with more to show).

# %% tags=["hide-input"]
dm_path = find_dm(dm_checkpoint, cfg)
if dm_path is None:
    print("no DM checkpoint found: pretraining one first")
    train_dm(cfg.unet, cfg.dm, open_dataset(cfg.data, data_dir), out, seed=seed, device=dev)
    dm_path = out / "dm_ema.pt"
unet = open_dm(dm_path, cfg)  # a diffusers folder brings its own UNet configuration
print(f"DM: {shown_path(dm_path)}")

# %% [markdown]
# ## Training
# Per step: cross-entropy of the direction index, the magnitude error, the adversarial
# loss, and the discriminator's mean outputs on $x_0$ (real) and $x'_0$ (shifted). The
# paper reports $D(x'_0)$ staying near 0.5 (its figure 10).

# %% tags=["hide-input"]
summary = None if train else released_record(out, DISCOVERY_CHECKPOINT, "train.json")
if summary is not None:  # a released model: weights and record, no checkpoint
    load_directions(out / "directions.pt", cfg=d, dm=unet)  # refuses weights of another config or DM
else:
    if not train:
        steps = checkpoint_step(out / DISCOVERY_CHECKPOINT)
    summary = train_discovery(unet, d, out, seed=seed, steps=None if steps == -1 else steps,
                              method=method, init_from=init_from or None, device=dev, precision=precision,
                              budget=parse_budget(str(budget)))
log = summary["log"]
plot_curves(log, "step", {"cross-entropy": "l_ce", "|s_hat - s|": "mag_err"}, f"{name}: reconstruction");
plot_curves(log, "step", {"D(x_0)": "d_real", "D(x'_0)": "d_fake", "running accuracy": "acc"},
            f"{name}: discriminator and reconstructor");

# %% [markdown]
# ## Reconstructor accuracy on fresh pairs
# RCA (section 5.5): new noise, random $k$ and $s$, the reconstructor in eval mode.
# Chance is $1/K$.

# %% tags=["hide-input"]
model, _ = load_directions(out / "directions.pt", unet.config, d)
rca = reconstructor_accuracy(unet.to(dev), model.to(dev), d, unet.steps(d.M), n_rca, d.batch,
                             torch.Generator().manual_seed(seed + 1), device=dev)
print(f"RCA {rca['rca']:.3f} (chance {1 / d.K:.3f}; paper, at its own settings: "
      f"{PAPER['rca'][dataset]})")

# %% tags=["hide-input"]
last = log[-1]
record = {"dataset": dataset, "preset": preset, "name": name, "K": d.K, "S": d.S, "M": d.M, "t_stop": d.t_stop,
          "batch": d.batch, "steps": summary["steps"], "steps_budget": d.steps, "lr": d.lr, "rca": rca["rca"],
          "rca_n": rca["n"], "mag_err": rca["mag_err"], "d_real": last["d_real"], "d_fake": last["d_fake"],
          "wall_s": summary["wall_s"], "method": method, "chain_budget": budget, "clip": clip,
          "head_init_std": head_init_std,
          "init_from": summary["init_from"], "trained_on": summary["trained_on"],
          "shift_frozen_from": summary["shift_frozen_from"], "seed": seed, "dm_checkpoint": shown_path(dm_path),
          "departures_from_paper": departures(cfg),
          "rca_curve": [[r["step"], r["acc"]] for r in log],
          "rca_curve_is": "R's accuracy on each step's training pairs (k, s), averaged over the logging window",
          "log": log}
write_record(out / "train.json", record, {"dm": dm_path, "directions": out / "directions.pt"})
print(f"wrote {shown_path(out / 'train.json')}")

# %% [markdown]
# ## How the recipe was chosen: recognisable against nameable
# Each point is a probe (`research/probe_discovery.py`, recorded in
# `results/<dataset>-<preset>/probes.json`), or a point along a longer one (NAME@STEP): its
# RCA on fresh pairs against the share of its directions that pass the interpretability
# evaluation (signed, smooth, digit kept at $|s| = S/2$; the directions chapter). RCA alone
# rewards edits that wreck the digit, which are easy to recognise; a useful recipe sits up
# and to the right, above the paper's RCA (dashed) and right of half the directions passing
# (dotted).

# %% tags=["hide-input"]
probes_path = project_path(f"results/{cfg.name}/probes.json")
scored = [p for p in json.loads(probes_path.read_text())["probes"] if p.get("interpretability")] \
    if probes_path.is_file() else []
if scored:
    fig = plot_points([{"name": p["name"], "rca": p["rca"], "fraction": p["interpretability"]["interpretable_fraction"]}
                       for p in scored], "fraction", "rca", "name", "probes: RCA against interpretable directions",
                      "fraction of directions that pass", "RCA (fresh pairs)")
    fig.axes[0].axhline(PAPER["rca"][dataset], color="gray", ls="--", lw=0.8)
    fig.axes[0].axvline(0.5, color="gray", ls=":", lw=0.8)
else:
    print(f"no scored probes in {shown_path(probes_path)}")


# %% [markdown]
# ## What this shows
# Generated from this chapter's record (`train.json`), so the numbers are this run's.

# %% tags=["hide-input"]
import json

from IPython.display import Markdown, display

from hdisc.prose import what_this_shows

display(Markdown(what_this_shows("train", json.loads((out / "train.json").read_text()))))
