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
# # Fidelity of shifted samples (paper section 5.6, table 2)
#
# If the discriminator does its job, shifting h should not push samples off the data
# manifold: the Fréchet distance of shifted samples (random $k$ and $s$) to real images
# should be close to that of the raw samples. The paper measures FID with Inception
# features. Inception's weights cannot be downloaded here, so the offline default uses
# the features of a small MNIST classifier that hdisc trains itself (`MnistNet`, 128-d):
# that number is **FD-MnistNet**, not FID, and its scale is not comparable with FID's.
# Pass `inception` (the TorchScript file `inception-2015-12-05.pt`) to get true FID.
# What carries over to the paper is the pattern: shifted vs raw.

# %% tags=["parameters"]
dataset = "mnist32"
preset = "cpu"
directions = ""
settings = "preset"  # "file": use a direction model trained with other K, S, M, t_stop deliberately
dm_checkpoint = ""
data_dir = ""  # folder datasets: the real images
out_dir = ""
seed = 0
n = 1000  # samples per set (the paper: the dataset size, e.g. 30k for CelebA-HQ)
sample_steps = -1  # -1: the direction model's M, so raw and shifted use the same chain
inception = ""  # path to inception-2015-12-05.pt for true FID
device = "auto"

# %% tags=["hide-input"]
from hdisc.chapter import typed_parameters

typed_parameters("fid", globals())

# %% tags=["hide-input"]
import torch

from hdisc.data import held_out_images
from hdisc.direction_set import DirectionSet
from hdisc.directions import edit_pairs
from hdisc.files import project_path, shown_path
from hdisc.metrics import fd, inception_features, mnist_net
from hdisc.report import PAPER
from hdisc.runs import open_trained, resolve_device, run_dir, write_record
from hdisc.viz import show_grid

dev = resolve_device(device)
cfg, unet, model, d, files = open_trained(dataset, preset, directions, dm_checkpoint, dev, settings)
out = run_dir(out_dir, cfg)
dirs = DirectionSet.of(model.shift, d, unet)
if sample_steps > 0:  # another chain: the strength is rescaled to keep the edit's size
    dirs = dirs.on(unet.steps(sample_steps))
shape = (unet.in_channels, unet.image_size, unet.image_size)
paper = PAPER["fid"]

# %% [markdown]
# ## Samples
# Raw samples and shifted samples from the same noise (one random $k$ and $s$ per image).

# %% tags=["hide-input"]
raw, shifted, _, _ = edit_pairs(unet, dirs, n, 1, seed=seed, batch=100, device=dev)
show_grid(torch.cat([raw[:16], shifted[:16]]), nrow=16, title="raw (top) and shifted (bottom)");

# %% [markdown]
# ## Fréchet distances to real images

# %% tags=["hide-input"]
real = held_out_images(cfg.data, data_dir, n)
rows = []
if cfg.data.source == "mnist":
    net = mnist_net(project_path("models/mnist_net.pt"))
    rows.append({"features": "FD-MnistNet", "raw": fd(net.features, raw, real),
                 "shifted": fd(net.features, shifted, real)})
if inception:
    feats = inception_features(project_path(inception), dev)
    rows.append({"features": "FID (Inception-v3)", "raw": fd(feats, raw, real, 50),
                 "shifted": fd(feats, shifted, real, 50)})
for r in rows:
    print(f"{r['features']}: raw {r['raw']:.2f}, shifted {r['shifted']:.2f} (n = {n}, preset {preset})")
if dataset in paper:
    print(f"paper FID at its own preset: raw {paper[dataset][0]}, shifted {paper[dataset][1]}")

# %% tags=["hide-input"]
write_record(out / "fid.json", {"dataset": dataset, "preset": preset, "n": n, "M": len(dirs.steps), "rows": rows,
                                "paper": paper.get(dataset), "seed": seed}, files)
print(f"wrote {shown_path(out / 'fid.json')}")


# %% [markdown]
# ## What this shows
# Generated from this chapter's record (`fid.json`), so the numbers are this run's.

# %% tags=["hide-input"]
import json

from IPython.display import Markdown, display

from hdisc.prose import what_this_shows

display(Markdown(what_this_shows("fid", json.loads((out / "fid.json").read_text()))))
