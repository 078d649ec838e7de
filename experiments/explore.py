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
# Pick a source of directions (the learned ones, or the training-free PCA, Jacobian,
# supervised and random directions of the compare chapter, each sized so that |dh| =
# |s| x `rel` x rms(h)), a direction, move the strength from $-S$ to $S$, and start from a
# seed or from a real image (inverted by 100-step DDIM): the edited image updates live.
# The learned directions are listed by change x realism. The same explorer opens from any
# notebook with one call:
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
n_sources = 256  # samples for the training-free directions offered beside the learned ones (0: none)
rel = 0.5  # their size: dh relative to rms(h) at strength 1 (as in the compare chapter)
device = "auto"

# %%
from hdisc.chapter import typed_parameters

typed_parameters("explore", globals())

# %%
from IPython.display import display

from hdisc.baselines import every_method, training_free
from hdisc.data import held_out_images
from hdisc.direction_set import DirectionSet
from hdisc.directions import ranked_order
from hdisc.files import project_path
from hdisc.metrics import mnist_net
from hdisc.runs import open_trained, resolve_device
from hdisc.widgets import Explorer

dev = resolve_device(device)
cfg, unet, model, d, files = open_trained(dataset, preset, directions, dm_checkpoint, dev, settings)
dirs = DirectionSet.of(model.shift, d, unet)
order = ranked_order(project_path(f"results/{cfg.name}/directions.json"), files, unet, dirs, model.discriminator,
                     n_rank, seed=seed, device=dev)  # the directions chapter's ranking, when it ranked these files
sources = {}
if n_sources:
    net = mnist_net(project_path("models/mnist_net.pt")) if dataset == "mnist32" else None
    methods, _ = every_method(unet, dirs, net, n_sources, rel, seed=seed, jacobian_iters=5, device=dev)
    sources = {name: other.to(dev) for name, other in training_free(methods).items()}
explorer = Explorer(unet, dirs, order=order, real=held_out_images(cfg.data, data_dir, n_real).to(dev),
                    sources=sources)
explorer.strength.value = dirs.S / 2  # the saved page shows an edit, not two equal images
display(explorer)
