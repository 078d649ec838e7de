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
# # Pretraining the diffusion model
#
# The paper edits pretrained diffusion models (its appendix table 3). None can be
# downloaded here, so hdisc trains its own: guided-diffusion's `UNetModel` predicting the
# noise, linear schedule over T = 1000 steps, MSE loss, Adam with warm-up and an
# exponential moving average (EMA) of the weights. The `paper` preset builds the
# paper's architecture; the `cpu` preset a 1.1M-parameter UNet that a 2-core CPU can
# train; `smoke` is for tests.
#
# The run checkpoints atomically every few hundred steps and resumes from `out_dir`
# when started again, so a killed run loses nothing.

# %% tags=["parameters"]
dataset = "mnist32"  # mnist32 | shapes32 | anime64 | celebahq128 | afhq128
preset = "cpu"  # paper | cpu | smoke
data_dir = ""  # folder of images (every dataset but mnist32)
out_dir = ""  # default: runs/<dataset>-<preset>
seed = 0
train = True  # False: render the checkpoint in out_dir as it is, without training further
steps = -1  # -1: the preset's number of steps
n_samples = 64  # samples in the grid
n_eval = 1000  # MNIST and shapes32: samples scored by the digit classifier or the factor readers (0: skip)
device = "auto"
precision = "float32"  # float32 | bfloat16 (autocast) | auto: bfloat16 on CPUs with AMX tiles (scripts/bench_step.py)

# %% tags=["hide-input"]
from hdisc.chapter import typed_parameters

typed_parameters("train_dm", globals())

# %% tags=["hide-input"]
from hdisc.backbone import load_dm
from hdisc.data import held_out_images, load_mnist, open_dataset
from hdisc.factors import load_shape_net, shapes_quality
from hdisc.files import project_path, shown_path
from hdisc.metrics import digit_quality, mnist_net
from hdisc.presets import get_preset
from hdisc.runs import recorded, released_record, resolve_device, run_dir, write_record
from hdisc.sampling import generate
from hdisc.training import DM_CHECKPOINT, checkpoint_step, train_dm
from hdisc.viz import plot_curves, save_grid, show_grid

cfg = get_preset(dataset, preset)
out = run_dir(out_dir, cfg)
dev = resolve_device(device)
print(f"{cfg.name}: UNet {cfg.unet}\ntraining {cfg.dm}\nwriting to {shown_path(out)}")

# %% [markdown]
# ## Training
# Resumes from `out_dir/dm_checkpoint.pt` if a run with the same configuration and seed
# stopped there. A render (`train=False`) of a released model folder, which holds the
# weights and their record but no training checkpoint, draws the loss curve from the record.

# %% tags=["hide-input"]
summary = None if train else released_record(out, DM_CHECKPOINT, "train_dm.json")
released = summary is not None
if summary is None:
    if not train:
        steps = checkpoint_step(out / DM_CHECKPOINT)
    summary = train_dm(cfg.unet, cfg.dm, open_dataset(cfg.data, data_dir), out, seed=seed,
                       steps=None if steps == -1 else steps, device=dev, precision=precision)
plot_curves([{"step": s, "loss": v} for s, v in summary["loss_curve"]], "step", {"noise MSE": "loss"},
            f"{cfg.name} pretraining loss");

# %% [markdown]
# ## Samples
# Deterministic DDIM with the preset's number of steps, from the EMA weights, with the
# predicted $x_0$ clipped to $[-1, 1]$ at every step (guided-diffusion's
# `clip_denoised`).

# %% tags=["hide-input"]
unet = load_dm(out / "dm_ema.pt")
unet.to(dev)
# a released model's evaluation of these weights on as many samples is shown from its record, not redone
reuse = recorded(out / "train_dm.json", {"dm": out / "dm_ema.pt"}, "quality", seed=seed) if released else None
reuse = reuse if reuse and reuse.get("n") == n_eval else None
n_gen = max(n_samples, n_eval if dataset in ("mnist32", "shapes32") and reuse is None else 0)
samples = generate(unet, n_gen, (cfg.unet.in_channels, cfg.unet.image_size, cfg.unet.image_size),
                   unet.steps(cfg.sample_steps), seed=seed, batch=min(64, cfg.unet.sample_batch()),
                   device=dev)
save_grid(samples[:n_samples], out / "samples.png", nrow=8)
show_grid(samples[:n_samples], nrow=8, title=f"{cfg.name}: DDIM-{cfg.sample_steps} samples (EMA)");

# %% [markdown]
# ## Are the samples digits, or shapes?
# For MNIST, a small classifier trained on MNIST's training digits (`MnistNet`, never on
# the test split) scores the samples: its mean confidence, its label histogram, and the
# Fréchet distance between samples and held-out test digits in its 128-d features
# (**FD-MnistNet**, not FID: no Inception network is involved). For shapes32, the factor
# readers (`hdisc.factors`) read every sample's factors: each continuous factor's
# distribution against held-out images' (Wasserstein-1 distance over the factor's range),
# the shapes' frequencies, the shape reader's confidence and FD in its features
# (**FD-ShapeNet**). The `real` row scores held-out images against other held-out images,
# the best a model can get at this sample size.

# %% tags=["hide-input"]
quality = reuse
if quality is not None:
    print(f"the evaluation of these weights on {n_eval} samples, from {shown_path(out / 'train_dm.json')}")
elif dataset == "mnist32" and n_eval > 0:
    net = mnist_net(project_path("models/mnist_net.pt"))
    quality = digit_quality(net, samples[:n_eval], load_mnist("test")[0][:2 * n_eval]) | {"n": n_eval}
elif dataset == "shapes32" and n_eval > 0:
    quality = shapes_quality(load_shape_net(), samples[:n_eval], held_out_images(cfg.data, None, 2 * n_eval))
    quality["n"] = n_eval
if quality is not None and dataset == "mnist32":
    for row in ("samples", "real"):
        q = quality[row]
        print(f"{row:8s} confidence {q['mean_confidence']:.3f}  FD-MnistNet {q['fd_mnistnet']:.2f}  "
              f"labels {q['label_hist']}")
elif quality is not None and dataset == "shapes32":
    for row in ("samples", "real"):
        q = quality[row]
        print(f"{row:8s} confidence {q['mean_confidence']:.3f}  FD-ShapeNet {q['fd_shapenet']:.2f}  shape TV "
              f"{q['shape_tv']:.3f}  factor distances {({k: round(v, 3) for k, v in q['factor_distance'].items()})}")

# %% tags=["hide-input"]
record = {"dataset": dataset, "preset": preset, "seed": seed, "config": cfg.to_dict(),
          "steps": summary["steps"], "final_loss": summary["final_loss"],
          "wall_s": summary["wall_s"], "loss_curve": summary["loss_curve"],
          "sampling": {"steps": cfg.sample_steps, "eta": 0.0, "clip_x0": True, "weights": "ema"},
          "quality": quality}
write_record(out / "train_dm.json", record, {"dm": out / "dm_ema.pt"})
print(f"wrote {shown_path(out / 'train_dm.json')} and {shown_path(out / 'samples.png')}")


# %% [markdown]
# ## What this shows
# Generated from this chapter's record (`train_dm.json`), so the numbers are this run's.

# %% tags=["hide-input"]
import json

from IPython.display import Markdown, display

from hdisc.prose import what_this_shows

display(Markdown(what_this_shows("train_dm", json.loads((out / "train_dm.json").read_text()))))
