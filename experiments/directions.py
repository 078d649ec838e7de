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
# For each direction $k$, images from the same noise $z$ with the strength $s$ uniform in
# $[-S, S]$: the middle column is the original sample. The paper shows such sweeps and asks
# people whether they can name what changes (its MOS, section 5.5). Here the same question
# is also asked of measurements (`hdisc.interpret`, MNIST only): does the digit keep its class,
# do $+s$ and $-s$ move the image in opposite ways, does the edit grow steadily, and which
# stroke measure (Morpho-MNIST's thickness, slant, width, height, length, area) does it move?

# %% tags=["parameters"]
dataset = "mnist32"
preset = "cpu"
directions = ""  # default: models/<dataset>-<preset>/directions.pt, else runs/...
settings = "preset"  # "file": use a direction model trained with other K, S, M, t_stop deliberately
dm_checkpoint = ""  # default: the DM beside it, as in train.ipynb
out_dir = ""  # default: runs/<dataset>-<preset>
seed = 0
n_rank = 16  # seeds used to rank the directions
n_interp = 16  # noises per direction for the interpretability evaluation (MNIST; 0: skip): K x 16 x 9 images
interp_from = ""  # a directions.json whose evaluation of these same models (n_interp, seed) is shown, not recomputed
n_examples = 4  # examples per direction in the figures
n_show = 8  # directions shown large
device = "auto"

# %% tags=["hide-input"]
from hdisc.chapter import typed_parameters

typed_parameters("directions", globals())

# %% tags=["hide-input"]
import torch
from IPython.display import Markdown, display

from hdisc.direction_set import DirectionSet, strengths
from hdisc.directions import alike_groups, distinct_effects, mean_abs_offdiag, ranked
from hdisc.files import atomic_write, project_path, shown_path
from hdisc.interpret import MEASURES, interpretability, named_beyond, passing_first
from hdisc.metrics import mnist_net
from hdisc.posthoc import recorded_name_floor
from hdisc.report import markdown_table
from hdisc.runs import open_trained, recorded, resolve_device, run_dir, write_record
from hdisc.viz import direction_panels, plot_curves, show_grid, show_matrix

dev = resolve_device(device)
cfg, unet, model, d, files = open_trained(dataset, preset, directions, dm_checkpoint, dev, settings)
out = run_dir(out_dir, cfg)
dirs = DirectionSet.of(model.shift, d, unet)  # the learned directions on their training chain
gen = torch.Generator().manual_seed(seed)
shape = (unet.in_channels, unet.image_size, unet.image_size)

# %% [markdown]
# ## Change and realism
# How far each direction moves the image at full strength ($s = \pm S$, averaged over
# seeds), and how real the trained discriminator finds the edits compared with the plain
# samples (1: as real). The paper ranks no directions; this order is ours.

# %% tags=["hide-input"]
ranking = ranked(unet, dirs, model.discriminator, n_rank, seed=seed, device=dev)
change, real, sim, by_change_realism = ranking.change, ranking.realism, ranking.similarity, ranking.order

# %% [markdown]
# ## Can a person name them?
# Every direction on `n_interp` noises at nine strengths in $[-S, S]$, on the training
# chain. A direction **passes** when the digit classifier `MnistNet` keeps the unshifted
# sample's class in at least 80% of the edits at $|s| = S/2$, when $+s$ and $-s$ change
# the image in opposite ways (the cosine of the two changes, blurred by 1.5 px, is
# negative), and when no single step between neighbouring strengths carries more than half
# of the edit. The attribute is the stroke measure whose change correlates most with $s$
# (Spearman's $\rho$, named when $|\rho| \geq 0.3$). That fixed threshold names half of all
# random directions too, so a name counts *beyond random* only when $|\rho|$ exceeds the
# 95th percentile over random directions that change the image as much
# (`research/equal_change.py`'s `name_floor`, shown when that record was measured on these
# models and noises). This is a measured complement to the paper's human MOS, not a
# substitute for it.

# %% tags=["hide-input"]
interp = recorded(interp_from, files, "interpretability", n_interp=n_interp, seed=seed) if interp_from else None
if interp is not None:  # the main job's committed render: the K x n_interp x 9 edits are not redone
    print(f"the evaluation of these models recorded in {shown_path(project_path(interp_from))} (same noises)")
elif dataset == "mnist32" and n_interp > 0:
    net = mnist_net(project_path("models/mnist_net.pt"))
    interp = interpretability(unet, dirs, n_interp, net, seed=seed + 1, device=dev)
    interp.pop("sweeps")
if interp is not None:
    rows = interp["directions"]
    summ = interp["summary"]
    floor = recorded_name_floor(project_path(f"results/{cfg.name}/equal_change.json"), files, n_interp, seed)
    beyond = named_beyond(summ, floor) if floor is not None else None
    interp["name_floor"], interp["named_beyond"] = floor, beyond
    order = passing_first(by_change_realism, rows, beyond or ())
    display(Markdown(markdown_table(
        ["measure", "value"],
        [["directions that pass (signed, smooth, class kept at |s| = S/2)",
          f"{len(summ['interpretable'])} of {summ['K']} ({summ['interpretable_fraction']:.0%}; 95% bootstrap interval "
          f"over the noises {summ['interpretable_interval'][0]:.0%}-{summ['interpretable_interval'][1]:.0%})"],
         ["signed", f"{summ['signed_fraction']:.0%}"], ["smooth", f"{summ['smooth_fraction']:.0%}"],
         ["median class kept at S/2", f"{summ['median_keep_half']:.0%}"],
         ["median class kept at S (the stronger test)", f"{summ['median_keep_full']:.0%}"],
         ["median mean abs change of the image at S/2 (pixels in [-1, 1])", f"{summ['median_change_half']:.3f}"],
         ["named by a stroke measure (abs rho >= 0.3)", f"{summ['named_fraction']:.0%}"],
         ["passes and named beyond random (abs rho above random directions' 95th percentile at equal change)",
          "no equal-change record for these models" if beyond is None
          else f"{len(beyond)} of {summ['K']} (abs rho > {floor:.2f}): {beyond}"],
         ["disentanglement / completeness (DCI-style, 1 = one measure per direction)",
          f"{summ['disentanglement']:.2f} / {summ['completeness']:.2f}"]])))
    display(Markdown(markdown_table(
        ["direction", "passes", "class kept at S/2", "at S", "sign cos", "largest step", "attribute", "rho",
         "change", "realism"],
        [[k, "yes" if rows[k]["passes"] else "no", f"{rows[k]['keep_half']:.0%}", f"{rows[k]['keep_full']:.0%}",
          rows[k]["sign_cos"], rows[k]["jump"], rows[k]["attribute"] or "-", rows[k]["attribute_rho"],
          change[k].item(), real[k].item()] for k in order])))
else:
    order = by_change_realism
    print("the interpretability evaluation needs MNIST's classifier and stroke measures: skipped")

# %% [markdown]
# The same directions against every stroke measure: the rank correlation of the measure's
# change with $s$ (red: grows with $s$, blue: shrinks). A nameable direction is one strong
# cell in its row; a row of equal colours moves everything at once.

# %% tags=["hide-input"]
if interp:
    show_matrix(torch.tensor(interp["matrix"])[order], order, list(MEASURES),
                title="direction x stroke measure (Spearman rho with s)", label="rho");

# %% [markdown]
# ## Attribute response curves
# For the leading directions, the mean change of the measure that names each one, in
# standard deviations of that measure over the plain samples, at each strength.

# %% tags=["hide-input"]
named = [k for k in order if interp["directions"][k]["attribute"]][:n_show] if interp else []
if named:
    sv = interp["svals"]
    curves = [{"s": s, **{f"{k}: {interp['directions'][k]['attribute']}":
                          interp["response"][k][MEASURES.index(interp["directions"][k]["attribute"][:-1])][i]
                          for k in named}} for i, s in enumerate(sv)]
    plot_curves(curves, "s", {key: key for key in curves[0] if key != "s"},
                "named measure's change (stds) against s");

# %% [markdown]
# ## Are the directions distinct?
# The cosine similarity of what two directions do to the same image at the same sign of
# $s$, averaged over the seeds (rows and columns in rank order). Directions that collapsed
# onto one effect show as blocks near $\pm 1$; distinct ones stay near 0. This diagnostic
# is not in the paper; a low RCA with large blocks here means the directions collapsed.
# Directions linked by |cosine| $\geq$ 0.7 are grouped (`alike_groups`): a reconstructor can
# hardly tell the members of one group apart.

# %% tags=["hide-input"]
top = order[:16]
distinct = {"mean_abs_similarity_all": mean_abs_offdiag(sim),
            "mean_abs_similarity_top16": mean_abs_offdiag(sim[top][:, top]),
            "alike_threshold": 0.7, "alike_groups": alike_groups(sim, 0.7), "similarity": sim.tolist()}
distinct["distinct_effects"] = distinct_effects(distinct["alike_groups"], d.K)
print({k: v for k, v in distinct.items() if k != "similarity"})
show_matrix(sim[top][:, top], top, title="similarity of the 16 leading directions' changes");

# %% [markdown]
# ## The leading directions
# Directions that pass first, each group by change x realism. Each panel: one direction on
# `n_examples` noises (rows), columns $s = -S, -S/2, 0, S/2, S$, then the difference between
# the two ends (mid grey: unchanged; white: ink the edit adds at $+S$; black: ink it
# removes; scaled to the panel's own largest change, so compare sizes by the titles' change).
# The first four panels are saved as `directions.png` beside the record (the
# README's figure).

# %% tags=["hide-input"]
svals = strengths(d.S, 5)
z = torch.randn((n_examples, *shape), generator=gen).to(dev)
lead = {}
for k in order[:n_show]:
    name = f": {interp['directions'][k]['attribute'] or 'unnamed'}, " + \
        ("passes" if interp["directions"][k]["passes"] else "fails") if interp else ""
    lead[f"direction {k}{name}\n(change {change[k]:.3f}, realism {real[k]:.2f})"] = dirs.sweep(unet, z, k, svals)
titles = list(lead)
for i in range(0, len(titles), 4):
    figure = direction_panels({t: lead[t] for t in titles[i:i + 4]}, svals)
    if i == 0:  # the README's figure
        atomic_write(out / "directions.png", lambda f, fig=figure: fig.savefig(f, format="png", dpi=150))

# %% [markdown]
# ## Every direction at a glance
# One example each, all $K$ directions in the same order (rows), the same five strengths.

# %% tags=["hide-input"]
sweep_all = torch.cat([dirs.sweep(unet, z[:1], k, svals)[0] for k in order])
show_grid(sweep_all, nrow=len(svals), title="all directions, in order", scale=0.8);

# %% tags=["hide-input"]
write_record(out / "directions.json", {
    "dataset": dataset, "preset": preset, "K": d.K, "S": d.S, "M": d.M, "t_stop": d.t_stop,
    "order": order, "ranking_order": ranking.order, "change": [change[k].item() for k in order],
    "realism": [real[k].item() for k in order],
    "ranked_by": "passes the interpretability evaluation, then named beyond random (when a floor is recorded), "
    "then change * realism" if interp else "change * realism",
    **distinct, "n_rank": n_rank, "n_interp": n_interp, "interpretability": interp, "seed": seed}, files)
print(f"wrote {shown_path(out / 'directions.json')}")


# %% [markdown]
# ## What this shows
# Generated from this chapter's record (`directions.json`), so the numbers are this run's.

# %% tags=["hide-input"]
import json

from IPython.display import Markdown, display

from hdisc.prose import what_this_shows

display(Markdown(what_this_shows("directions", json.loads((out / "directions.json").read_text()))))
