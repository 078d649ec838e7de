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

# %%

# %% [markdown]
# # Exploring directions with sliders
#
# Pick a direction, move the strength from $-S$ to $S$, and start from a seed or from a
# real image (inverted by 100-step DDIM): the edited image updates live. Directions are
# listed by how much they change an image. The same explorer opens from any notebook with
# one call:
#
# ```python
# import hdisc
# hdisc.explore("models/mnist32-cpu/directions.pt")
# ```
#
# In the published book the explorer below shows the state it was saved in: moving its
# controls recomputes the image only with a running kernel (open this notebook in
# JupyterLab).

# %% tags=["parameters"]
dataset = "mnist32"
preset = "cpu"
directions = ""
settings = "preset"  # "file": use a direction model trained with other K, S, M, t_stop deliberately
dm_checkpoint = ""
data_dir = ""  # folder datasets: real images to start from
seed = 0
n_real = 8
n_rank = 16
device = "auto"

# %%
from IPython.display import display

from hdisc.data import held_out_images
from hdisc.directions import ranked
from hdisc.runs import open_trained, resolve_device
from hdisc.widgets import Explorer

dev = resolve_device(device)
cfg, unet, model, d = open_trained(dataset, preset, directions, dm_checkpoint, dev, settings)
order = ranked(unet, model, d, n_rank, seed=seed, device=dev).order
explorer = Explorer(unet, model, d, order=order, real=held_out_images(cfg.data, data_dir, n_real).to(dev))
display(explorer)
