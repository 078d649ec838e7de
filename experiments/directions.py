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
# # Interpretable directions (paper section 5.2)
#
# For each direction $k$, five images from the same noise $z$ with the strength $s$
# uniform in $[-S, S]$: the middle column is the original sample. Directions are ordered
# by how much they change an image (mean $|x'_0 - x_0|$ at $s = \pm S$ over a few seeds),
# so the first rows show what the model found and the last ones the directions it left
# nearly unused.

# %% tags=["parameters"]
dataset = "mnist32"
preset = "cpu"
directions = ""  # default: models/<dataset>-<preset>/directions.pt, else runs/...
settings = "preset"  # "file": use a direction model trained with other K, S, M, t_stop deliberately
dm_checkpoint = ""  # default: the DM beside it, as in train.ipynb
out_dir = ""  # default: runs/<dataset>-<preset>
seed = 0
n_rank = 16  # seeds used to rank the directions
n_examples = 4  # examples per direction in the figures
n_show = 8  # directions shown large
device = "auto"

# %%
import torch

from hdisc.directions import mean_abs_offdiag, ranked, strengths, sweep
from hdisc.files import write_json
from hdisc.runs import open_trained, resolve_device, run_dir
from hdisc.schedule import ddim_steps
from hdisc.viz import show_grid, show_similarity

dev = resolve_device(device)
cfg, unet, model, d = open_trained(dataset, preset, directions, dm_checkpoint, dev, settings)
out = run_dir(out_dir, cfg)
steps = ddim_steps(d.M)
gen = torch.Generator().manual_seed(seed)
shape = (unet.in_channels, unet.image_size, unet.image_size)

# %% [markdown]
# ## Ranking
# How far each direction moves the image at full strength ($s = \pm S$, averaged over
# seeds), times how real the trained discriminator finds the edits compared with the
# plain samples (1: as real). The product puts directions that change the image and keep
# it plausible first; the paper ranks no directions, so this order is ours.

# %%
order, change, real, sim = ranked(unet, model, d, n_rank, seed=seed, device=dev)
print("directions, ranked:", order)
print("mean |x' - x_0| at s = +-S:", [round(change[k].item(), 3) for k in order])
print("realism of the edits:     ", [round(real[k].item(), 2) for k in order])

# %% [markdown]
# ## Are the directions distinct?
# The cosine similarity of what two directions do to the same image at the same sign of
# $s$, averaged over the seeds (rows and columns in rank order). Directions that collapsed
# onto one effect show as blocks near $\pm 1$; distinct ones stay near 0. This diagnostic
# is not in the paper; a low RCA with large blocks here means the directions collapsed.

# %%
top = order[:16]
distinct = {"mean_abs_similarity_all": mean_abs_offdiag(sim),
            "mean_abs_similarity_top16": mean_abs_offdiag(sim[top][:, top])}
print({k: round(v, 3) for k, v in distinct.items()})
show_similarity(sim[top][:, top], top, "similarity of the 16 leading directions' changes");

# %% [markdown]
# ## The leading directions
# Each panel: one direction, one row per example, columns $s = -S, -S/2, 0, S/2, S$.

# %%
svals = strengths(d.S, 5)
z = torch.randn((n_examples, *shape), generator=gen).to(dev)
for k in order[:n_show]:
    imgs = sweep(unet, model.shift, z, k, svals, steps, d.t_stop)
    title = f"direction {k} (change {change[k]:.3f}, realism {real[k]:.2f})"
    show_grid(imgs.flatten(0, 1), nrow=len(svals), title=title, scale=1.0);

# %% [markdown]
# ## Every direction at a glance
# One example each, all $K$ directions in rank order (rows), the same five strengths.

# %%
sweep_all = torch.cat([sweep(unet, model.shift, z[:1], k, svals, steps, d.t_stop)[0] for k in order])
show_grid(sweep_all, nrow=len(svals), title="all directions, ranked", scale=0.8);

# %%
write_json(out / "directions.json", {
    "dataset": dataset, "preset": preset, "K": d.K, "S": d.S, "M": d.M, "t_stop": d.t_stop,
    "order": order, "change": [change[k].item() for k in order],
    "realism": [real[k].item() for k in order],
    "ranked_by": "change * realism", **distinct, "n_rank": n_rank, "seed": seed})
print(f"wrote {out / 'directions.json'}")
