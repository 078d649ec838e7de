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
# # Homogeneity and consistency across timesteps (paper section 5.4)
#
# Asyrp found h-space homogeneous (one shift works for every sample) and consistent
# across timesteps. The paper checks both for its directions: for a direction $k$, the
# per-sample shift $f^k(h_t, t)$ is averaged over $N$ samples at each timestep (the mean
# direction $\overline{\Delta h}^k_t$), and then also over the shifting interval (one
# global direction $\overline{\Delta h}^k$). Editing the same real image with the
# per-sample, the mean and the global shift should give nearly the same picture.
#
# The number: for each pair (mean vs per-sample, global vs per-sample), the mean absolute
# difference of the two edited images divided by the mean absolute change the per-sample
# edit makes. 0 means identical edits; 1 means the difference is as large as the edit.

# %% tags=["parameters"]
dataset = "mnist32"
preset = "cpu"
directions = ""
settings = "preset"  # "file": use a direction model trained with other K, S, M, t_stop deliberately
dm_checkpoint = ""
data_dir = ""  # folder datasets: real images to edit
out_dir = ""
seed = 0
n_mean = 32  # samples N averaged into the mean direction
n_real = 6
invert_steps = 100
ks = []  # empty: the n_dirs that change images most
n_dirs = 3
n_rank = 16
device = "auto"

# %% tags=["hide-input"]
from hdisc.chapter import typed_parameters

typed_parameters("properties", globals())

# %% tags=["hide-input"]
import torch

from hdisc.chapter import check_directions
from hdisc.data import held_out_images
from hdisc.direction_set import DirectionSet
from hdisc.directions import compare_shifts, invert, ranked_order
from hdisc.files import shown_path
from hdisc.runs import open_trained, resolve_device, run_dir, write_record
from hdisc.viz import show_grid

dev = resolve_device(device)
cfg, unet, model, d, files = open_trained(dataset, preset, directions, dm_checkpoint, dev, settings)
out = run_dir(out_dir, cfg)
shape = (unet.in_channels, unet.image_size, unet.image_size)
gen = torch.Generator().manual_seed(seed)
dirs = DirectionSet.of(model.shift, d, unet)
check_directions("properties", ks, d.K)
ks = ks or ranked_order(out / "directions.json", files, unet, dirs, model.discriminator, n_rank, seed=seed,
                        device=dev)[:n_dirs]
real = held_out_images(cfg.data, data_dir, n_real).to(dev)
inv = unet.steps(invert_steps)
x_T, recon = invert(unet, real, inv)
on_inv = dirs.on(inv)  # the same directions on the inversion chain, s rescaled to keep the edit's size

# %% [markdown]
# ## Per-sample, mean and global shifts on real images
# Rows: reconstruction, per-sample shift, mean shift, global shift, at strength $S$
# (rescaled by `DirectionSet.on` to the size it had on the training chain, as in the real-editing
# chapter). The mean and global directions are measured on the 100-step chain used for
# editing.

# %% tags=["hide-input"]
rows = []
for k in ks:
    noise = torch.randn((n_mean, *shape), generator=gen).to(dev)
    row, images = compare_shifts(unet, on_inv, x_T, recon, k, d.S, noise)
    rows.append(row)
    show_grid(images, nrow=n_real, title=f"direction {k}: reconstruction / per-sample / mean / global", scale=1.0);
for r in rows:
    print(f"k={r['k']}: edit changes {r['edit_change']:.3f}; relative difference mean {r['mean_vs_sample']:.3f}, "
          f"global {r['global_vs_sample']:.3f}")

# %% tags=["hide-input"]
write_record(out / "properties.json", {"dataset": dataset, "preset": preset, "n_mean": n_mean, "n_real": n_real,
                                       "invert_steps": invert_steps, "strength": d.S,
                                       "strength_scale": on_inv.scale, "rows": rows, "seed": seed}, files)
print(f"wrote {shown_path(out / 'properties.json')}")


# %% [markdown]
# ## What this shows
# Generated from this chapter's record (`properties.json`), so the numbers are this run's.

# %% tags=["hide-input"]
import json

from IPython.display import Markdown, display

from hdisc.prose import what_this_shows

display(Markdown(what_this_shows("properties", json.loads((out / "properties.json").read_text()))))
