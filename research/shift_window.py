"""Does a later shift window keep the digit at equal image change? (issue 11)

    python research/shift_window.py [n=8] [seed=123]

Edits at high t decide coarse shape in diffusion models (the reason the paper stops at
t_stop), so shifting only the later part of the chain is an obvious lever for edits that
keep the class. This edits with the committed cpu model's directions (``models/mnist32-cpu/``)
on its training chain, shifting only the steps with t_stop < t <= t_start, for each
``t_start`` of :data:`T_STARTS` (all 6 shifted steps, the last 4, the last 2), at each
strength of :data:`STRENGTHS` and both signs, for all 32 directions on ``n`` noises. Per
window and strength it records the share of edits that keep ``MnistNet``'s class of the
unedited sample (``keep``) and the mean absolute pixel change (``change``); a narrower window
moves the image less at the same s, so each narrower cell also gets the full window's keep
at the same change (``keep_full_at_same_change``, linear between the full window's cells).
Writes ``results/mnist32-cpu/shift_window.json``; about 8 minutes on one thread at n=8.
The directions were trained with the full window: this asks what the window does to them,
not what directions trained in a narrower one would be.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from hdisc.files import project_path
from hdisc.metrics import mnist_net
from hdisc.runs import open_trained, script_settings, write_record
from hdisc.sampling import Shifted, sample_ddim

T_STARTS = (999, 777, 555)
"""Upper ends of the shifted window: t_stop < t <= t_start is shifted (999: the whole chain above t_stop)."""
STRENGTHS = (2.5, 5.0, 10.0, 20.0)
"""|s| of the edits (S/2, S, 2S, 4S for the committed S = 5), each at both signs."""


class Windowed(Shifted):
    """:class:`hdisc.sampling.Shifted`, plain DDIM above ``t_start`` as well as at or below t_stop."""

    def __init__(self, *args, t_start: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.t_start = t_start

    def __call__(self, x: torch.Tensor, t: torch.Tensor):
        return self.unet(x, t) if int(t[0]) > self.t_start else super().__call__(x, t)


def main(*args: str) -> None:
    given = script_settings(args, {"n": "N (noises, >= 1)", "seed": "N"})
    n, seed = int(given.get("n", 8)), int(given.get("seed", 123))
    if n < 1:
        raise SystemExit(f"n must be >= 1 (noises per direction), got {n}: e.g. n=8")
    start = time.perf_counter()
    cfg, unet, model, d, files = open_trained("mnist32", "cpu")
    net = mnist_net(project_path("models/mnist_net.pt")).eval()
    steps = unet.steps(d.M)
    z = torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        x0 = sample_ddim(unet, z, steps, clip=d.clip, disable=True)
        c0 = net(x0).argmax(1)
    rows = []
    for t_start in T_STARTS:
        shifted = [int(t) for t in steps.t if d.t_stop < int(t) <= t_start]
        for s in STRENGTHS:
            keep, change = [], []
            for k in range(d.K):
                for sign in (-1.0, 1.0):
                    edit = Windowed(unet, model.shift, torch.full((n,), k), torch.full((n,), sign * s), d.t_stop,
                                    t_start=t_start)
                    with torch.no_grad():
                        x = sample_ddim(edit, z, steps, clip=d.clip, disable=True)
                        keep.append((net(x).argmax(1) == c0).float().mean().item())
                        change.append((x - x0).abs().mean().item())
            rows.append({"t_start": t_start, "shifted_t": shifted, "s": s, "keep": float(np.mean(keep)),
                         "change": float(np.mean(change))})
            print(rows[-1], f"{time.perf_counter() - start:.0f} s", flush=True)
    full = np.array(sorted((r["change"], r["keep"]) for r in rows if r["t_start"] == T_STARTS[0]))
    for r in rows:
        inside = full[0, 0] <= r["change"] <= full[-1, 0]
        r["keep_full_at_same_change"] = float(np.interp(r["change"], full[:, 0], full[:, 1])) if inside else None
    record = {"what": __doc__.split("\n\n")[2].replace("\n", " ").strip(),
              "command": "python research/shift_window.py " + " ".join(args), "n": n, "seed": seed,
              "K": d.K, "S": d.S, "M": d.M, "t_stop": d.t_stop, "rows": rows,
              "wall_s": round(time.perf_counter() - start, 1)}
    print(write_record(project_path("results/mnist32-cpu/shift_window.json"), record, files))


if __name__ == "__main__":
    main(*sys.argv[1:])
