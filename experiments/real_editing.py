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
# # Editing real images (paper section 5.3)
#
# A real image the DM never saw is mapped to its noise $x_T$ by deterministic DDIM
# inversion over 100 steps; sampling back from $x_T$ reconstructs it, and sampling with
# the shifted h of eq. 2 edits it. For MNIST the images are the held-out test digits; for
# the face models the paper uses FFHQ photos, loaded here from `data_dir`.

# %% tags=["parameters"]
dataset = "mnist32"
preset = "cpu"
directions = ""  # default: models/<dataset>-<preset>/directions.pt, else runs/...
dm_checkpoint = ""
data_dir = ""  # folder datasets: real images to edit (e.g. FFHQ)
out_dir = ""
seed = 0
n_real = 8  # real images to invert and edit
invert_steps = 100  # the paper's
ks = []  # directions to apply; empty: the n_dirs that change images most
n_dirs = 4
n_rank = 16
device = "auto"

# %% tags=["hide-input"]
from hdisc.chapter import typed_parameters

typed_parameters("real_editing", globals())

# %% tags=["hide-input"]
import torch

from hdisc.chapter import check_directions
from hdisc.data import held_out_images
from hdisc.direction_set import DirectionSet, shifted_steps, strengths
from hdisc.directions import invert, ranked_order
from hdisc.files import shown_path
from hdisc.runs import open_trained, resolve_device, run_dir, write_record
from hdisc.viz import show_grid

dev = resolve_device(device)
cfg, unet, model, d, files = open_trained(dataset, preset, directions, dm_checkpoint, dev)
out = run_dir(out_dir, cfg)
dirs = DirectionSet.of(model.shift, d, unet)
check_directions("real_editing", ks, d.K)
ks = ks or ranked_order(out / "directions.json", files, unet, dirs, model.discriminator, n_rank, seed=seed,
                        device=dev)[:n_dirs]
print("directions:", ks)

# %% [markdown]
# ## Inversion and reconstruction
# Top: the real images; bottom: DDIM sampling from their inverted noise. The error is the
# mean absolute pixel difference on the $[-1, 1]$ scale.

# %% tags=["hide-input"]
real = held_out_images(cfg.data, data_dir, n_real).to(dev)
inv = unet.steps(invert_steps)
x_T, recon = invert(unet, real, inv)
err = (recon - real).abs().mean().item()
print(f"reconstruction: mean |x - x_rec| = {err:.4f}, max = {(recon - real).abs().max().item():.3f}")
show_grid(torch.cat([real, recon]), nrow=n_real, title="real (top) and reconstructed (bottom)");

# %% [markdown]
# ## Edits
# One panel per direction: a row per real image, strengths $-S \dots S$ (middle: the
# reconstruction). The edit runs on the inversion's chain, whose shifted steps outnumber
# the training chain's, and every asymmetric step moves the image by about the same
# amount whatever its size; so $s$ is scaled by their ratio (`DirectionSet.on`) to give an
# edit the size it had in training.

# %% tags=["hide-input"]
svals = strengths(d.S, 5)
on_inv = dirs.on(inv)
scale = on_inv.scale
print(f"shifted steps: {shifted_steps(inv, d.t_stop)} here, {shifted_steps(dirs.steps, d.t_stop)} in "
      f"training; s scaled by {scale:.3f}")
for k in ks:
    show_grid(on_inv.sweep(unet, x_T, k, svals).flatten(0, 1), nrow=len(svals),
              title=f"direction {k} on real images", scale=1.0);

# %% tags=["hide-input"]
write_record(out / "real_editing.json", {
    "dataset": dataset, "preset": preset, "n_real": n_real, "invert_steps": invert_steps, "strength_scale": scale,
    "directions": ks,
    "recon_mean_abs_err": err, "recon_max_abs_err": (recon - real).abs().max().item(), "seed": seed}, files)
print(f"wrote {shown_path(out / 'real_editing.json')}")


# %% [markdown]
# ## What this shows
# Generated from this chapter's record (`real_editing.json`), so the numbers are this run's.

# %% tags=["hide-input"]
import json

from IPython.display import Markdown, display

from hdisc.prose import what_this_shows

display(Markdown(what_this_shows("real_editing", json.loads((out / "real_editing.json").read_text()))))
