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
# # Shapes: which factor does each direction move?
#
# On MNIST the only truth is the digit's class, so whether a direction *means* something is
# read through proxies. shapes32 is drawn from seven known factors (shape, scale,
# orientation, x, y, hue, background grey), and each can be read back from any image's pixels
# (`hdisc.factors`, R$^2 \ge 0.995$ on held-out images). So every edit can be scored against
# the truth, as the disentanglement literature scores encoders (DCI, Eastwood and Williams
# 2018; a MIG-style gap) and DisCo scores directions in a frozen generator.
#
# For each family of directions (PCA of h, the Jacobian's singular vectors, supervised
# directions from the factors read off samples, random ones, and the learned directions when
# there are some), every direction edits the same noises at nine strengths over $[-S, S]$;
# each set is first rescaled to equal image change. The **importance** of direction $k$ for
# factor $f$ is how far it moves $f$ *the same way in every image* (the mean slope of the
# change against $s$, times $S$), in units of what random directions do to $f$: a factor
# that every edit moves, like the background's grey, must not make every direction look
# devoted to it. **Disentanglement**: does each direction move one factor? **Completeness**:
# is each factor moved by one direction? The **gap**: how far a factor's best direction
# leads the second best. Random directions must score near zero.

# %% tags=["parameters"]
dataset = "shapes32"
preset = "cpu"
dm_checkpoint = ""  # default: models/shapes32-<preset>/dm_ema.pt, else runs/...
directions = ""  # learned directions to score beside the training-free families (none: those only)
out_dir = ""  # default: runs/<dataset>-<preset>
n = 32  # noises per direction
n_pca = 512  # samples for PCA and the supervised directions
target = 0.05  # the image change every set is rescaled to without learned directions (mean |pixel change| at S/2)
seed = 0
from_record = ""  # a truth.json to draw instead of computing again (the book's render-only mode)
device = "auto"
precision = "auto"  # float32 | bfloat16 (autocast) | auto: bfloat16 on CPUs with AMX tiles

# %% tags=["hide-input"]
from hdisc.chapter import typed_parameters

typed_parameters("truth", globals())

# %% tags=["hide-input"]
import json
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, Markdown, display

from hdisc.direction_set import DirectionSet, FixedDirections
from hdisc.factors import load_shape_net
from hdisc.files import atomic_write, project_path, shown_path
from hdisc.precision import compute_in, resolve_precision
from hdisc.presets import get_preset
from hdisc.prose import what_this_shows
from hdisc.report import truth_table
from hdisc.runs import computed_from, find_dm, open_dm, resolve_device, run_dir, write_record
from hdisc.training import load_directions
from hdisc.truth import REL, compare_on_truth
from hdisc.viz import best_edits

if dataset != "shapes32":
    raise ValueError(f"this chapter scores directions against shapes32's known factors: run it with "
                     f"dataset='shapes32', not {dataset!r}")
cfg = get_preset(dataset, preset)
out = run_dir(out_dir, cfg)
dev = resolve_device(device)

# %% [markdown]
# ## Every family on the truth
# (From the record when `from_record` names one made from the same model files: the
# comparison edits K x `n` x 9 images per family, about half an hour on one core.)

# %% tags=["hide-input"]
dm_path = find_dm(dm_checkpoint, cfg)
if dm_path is None:
    raise FileNotFoundError(f"no shapes32 DM for {cfg.name}: run experiments/train_dm.ipynb with -p dataset shapes32 "
                            "first, or pass dm_checkpoint")
files = {"dm": dm_path, "shape_net": project_path("models/shape_net.pt"),
         "directions": project_path(directions) if directions else None}
old = json.loads(project_path(from_record).read_text()) if from_record else None
if old is not None and computed_from(old, files):
    print(f"drawn from {from_record} ({old['command']}), not computed again")
    record = old
else:
    if old is not None:
        print(f"{from_record} was made from other model files: computing again")
    start = time.perf_counter()
    unet = open_dm(dm_path, cfg)
    unet.to(dev)
    d = cfg.discovery
    base = DirectionSet.of(FixedDirections(torch.zeros(d.K, *unet.config.h_shape), REL), d, unet)
    learned = None
    if directions:
        model, dcfg = load_directions(files["directions"], dm=unet)
        learned = DirectionSet.of(model.shift.to(dev), dcfg, unet)
    chosen = resolve_precision(precision, dev)
    with compute_in(chosen, dev):
        record, scaled = compare_on_truth(unet, base, load_shape_net(), learned, n=n, n_pca=n_pca, target=target,
                                          seed=seed, device=dev)
        figure = best_edits(unet, scaled, record, seed=seed)
        atomic_write(out / "truth_edits.png", lambda f: figure.savefig(f, format="png", dpi=110))
        plt.close(figure)
    record = {"dataset": dataset, "preset": preset, "precision": chosen, **record,
              "command": f"papermill experiments/truth.ipynb out.ipynb -p dataset {dataset} -p preset {preset}"
                         + (f" -p directions {shown_path(files['directions'])}" if directions else ""),
              "wall_s": round(time.perf_counter() - start, 1)}
write_record(out / "truth.json", record, files)
print(f"wrote {shown_path(out / 'truth.json')}")

# %% [markdown]
# ## Each factor's best direction, in every family
# For each family (columns) and factor (rows), the direction that moves that factor most,
# on one noise at $s = -S, -S/2, 0, S/2, S$, at the size the family was scored at. A family
# that recovers a factor shows it changing along the row and little else changing.

# %% tags=["hide-input"]
figure = project_path(from_record).parent / "truth_edits.png" if record is old else out / "truth_edits.png"
display(Image(filename=str(figure)))
if figure.resolve() != (out / "truth_edits.png").resolve():
    atomic_write(out / "truth_edits.png", lambda f: f.write(figure.read_bytes()))

# %% [markdown]
# ## Which direction moves which factor
# Each family's importance matrix (directions in rows, factors in columns), in units of
# what random directions do to each factor; brighter is more.

# %% tags=["hide-input"]
rows = record["rows"]
fig, axes = plt.subplots(1, len(rows), figsize=(2.3 * len(rows), 4.2), sharey=True, squeeze=False)
axes = axes[0]
vmax = max(max(max(r) for r in row["importance"]) for row in rows)
for ax, row in zip(axes, rows, strict=True):
    ax.imshow(row["importance"], cmap="magma", vmin=0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(record["factors"])), record["factors"], rotation=90, fontsize=7)
    ax.set_title(f"{row['method']}\nD {row['disentanglement']:.2f}, C {row['completeness']:.2f}", fontsize=8)
axes[0].set_ylabel("direction")
fig.tight_layout()

# %% tags=["hide-input"]
display(Markdown(truth_table(record)))

# %% [markdown]
# ## What this shows
# Generated from this chapter's record (`truth.json`), so the numbers are this run's.

# %% tags=["hide-input"]
display(Markdown(what_this_shows("truth", json.loads((out / "truth.json").read_text()))))
