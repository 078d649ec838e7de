"""How well a DM predicts the noise where sampling starts, t near T (issue 32's bfloat16 question).

    python research/high_t.py dataset=shapes32 files=A.pt,B.pt [n=64] [out=results/shapes32-cpu/high_t.json]

Each file is a DM (``dm_ema.pt``) or a training checkpoint (``dm_checkpoint.pt``, whose raw
``model`` weights are read, with the UNet configuration of the dataset's cpu preset). On ``n``
held-out images, at t = 999, 900, 700 and 500 of the DM's own schedule (a checkpoint's
stored one; linear betas for files from before schedules were stored): the noise-prediction
MSE, and the error of the predicted x_0's per-image mean colour (x_0 = (x_t - sqrt(1 - abar)
eps) / sqrt(abar) divides the prediction's error by sqrt(abar): 0.0064 at t = 999 on the linear
schedule, 0.069 on the scaled-linear one; a DDIM chain sets an image's colours from these
first predictions, and clipping them to [-1, 1] bakes the error in).
"""

from __future__ import annotations

import sys

import torch

from hdisc.backbone import build_unet, load_dm
from hdisc.data import held_out_images
from hdisc.dm import DM
from hdisc.files import load_file, project_path, sha256, shown_path, write_json
from hdisc.presets import get_preset
from hdisc.runs import script_settings
from hdisc.schedule import DEFAULT, Schedule

TIMESTEPS = (999, 900, 700, 500)


@torch.no_grad()
def high_t(unet: DM, x0: torch.Tensor, seed: int = 0) -> list[dict]:
    """Noise-prediction MSE and the mean-colour error of the predicted x_0 at each t of the
    DM's own schedule (with its abar there)."""
    abar = unet.schedule.alphas_cumprod()
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for t in TIMESTEPS:
        a = abar[t].float()
        eps = torch.randn(x0.shape, generator=gen)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        pred = unet(xt, torch.full((len(x0),), t))
        x0_hat = (xt - (1 - a).sqrt() * pred) / a.sqrt()
        colour_err = (x0_hat.mean((2, 3)) - x0.mean((2, 3))).abs().mean().item()
        rows.append({"t": t, "abar": a.item(), "eps_mse": ((pred - eps) ** 2).mean().item(),
                     "x0_mean_colour_err": colour_err})
    return rows


def main(*args: str) -> None:
    given = script_settings(args, {"dataset": "mnist32|shapes32", "files": "A.pt,B.pt", "n": "N", "out": "PATH"})
    preset = get_preset(given.get("dataset", "shapes32"), "cpu")
    x0 = held_out_images(preset.data, None, int(given.get("n", 64)))
    entries = []
    for f in given["files"].split(","):
        path = project_path(f)
        blob = load_file(path, "DM or checkpoint")
        if "model" in blob and "ema" in blob:  # a training checkpoint: its raw weights
            net = build_unet(preset.unet)
            net.load_state_dict(blob["model"])
            what = f"raw weights at step {blob['step']}, trained on {blob.get('trained_on')}"
            schedule = Schedule.from_dict(blob["schedule"]) if "schedule" in blob else DEFAULT
            unet = DM(net, preset.unet, schedule)  # a v-predicting network's output read as noise
        else:
            unet = load_dm(path, preset.unet)
            what = "EMA weights"
        entries.append({"file": shown_path(path), "sha256": sha256(path), "weights": what,
                        "schedule": unet.schedule.to_dict(), "rows": high_t(unet.eval(), x0)})
        print(entries[-1])
    out = project_path(given.get("out", f"results/{preset.name}/high_t.json"))
    write_json(out, {"dataset": preset.dataset, "n": len(x0), "command": "python research/high_t.py " + " ".join(args),
                     "entries": entries})
    print(f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
