"""The MOS proxy (:mod:`hdisc.mos_proxy`) on every family of directions at equal image change (issue 31).

    python research/mos_proxy.py [n=32] [seed=11] [precision=auto] [device=cpu]

On the committed cpu model (``models/mnist32-cpu/``): the learned directions as trained, and
PCA, Jacobian, supervised and two sets of random directions each at the size where its median
edit at S/2 moves the image as far as the learned set's (the sizes recorded in
``results/mnist32-cpu/equal_change.json``, made from the same model files; refused otherwise).
Every direction's sweep over 9 strengths in [-S, S] on ``n`` noises (seed ``seed``). The first
random set (seed 100) sets the thresholds (:func:`hdisc.mos_proxy.calibrate`); the second
(seed 101) is scored with them, out of sample, as the floor. Writes
``results/mnist32-cpu/mos_proxy.json``; each family's sweeps are kept in
``runs/mos_proxy/`` as they finish, so a stopped run resumes where it was.
"""

from __future__ import annotations

import json
import re
import sys
import time

import torch

from hdisc.baselines import LEARNED, every_method, random_set
from hdisc.direction_set import DirectionSet, strengths
from hdisc.files import atomic_save, load_file, project_path, sha256, shown_path
from hdisc.metrics import mnist_net
from hdisc.mos_proxy import calibrate, score
from hdisc.precision import compute_in, resolve_precision
from hdisc.runs import computed_from, open_trained, resolve_device, script_settings, write_record

CHAPTER = {"rel": 0.5, "n_pca": 1000, "jacobian_iters": 10}
"""The compare chapter's settings that build the training-free families (experiments/compare.py)."""
RANDOM_SEEDS = {"random (calibration)": 100, "random": 101}


def main(*args: str) -> None:
    given = script_settings(args, {"n": "N", "seed": "N", "precision": "auto|float32|bfloat16", "device": "cpu|cuda"})
    n, seed = int(given.get("n", 32)), int(given.get("seed", 11))
    dev = resolve_device(given.get("device", "auto"))
    precision = resolve_precision(given.get("precision", "auto"), dev)
    start = time.perf_counter()
    cfg, unet, model, d, files = open_trained("mnist32", "cpu", device=dev)
    equal = json.loads(project_path("results/mnist32-cpu/equal_change.json").read_text())
    if not computed_from(equal, files):
        raise SystemExit("results/mnist32-cpu/equal_change.json was made from other model files: run "
                         "research/equal_change.py first, so the sizes at equal change belong to these models")
    sizes = {r["method"]: r["rel"] for r in equal["rows"] if r["size"] == "equal change"}
    dirs = DirectionSet.of(model.shift, d, unet)
    net = mnist_net(project_path("models/mnist_net.pt"))
    methods, diag = every_method(unet, dirs, net, CHAPTER["n_pca"], CHAPTER["rel"], seed=0,
                                 jacobian_iters=CHAPTER["jacobian_iters"], device=dev)
    sets = {"learned, as trained": dirs}
    sets |= {name: other.at_size(sizes[name]) for name, other in methods.items() if name not in (LEARNED, "random")}
    sets |= {name: random_set(dirs, diag["h_shape"], sizes["random"], s) for name, s in RANDOM_SEEDS.items()}
    svals = strengths(d.S, 9)
    z = torch.randn((n, unet.in_channels, unet.image_size, unet.image_size),
                    generator=torch.Generator().manual_seed(seed)).to(dev)
    cache = project_path("runs/mos_proxy")
    key = {"n": n, "seed": seed, "precision": precision, "models": {r: sha256(f) for r, f in files.items() if f}}
    sweeps, stats = {}, {}
    for name, other in sets.items():
        path = cache / (re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") + ".pt")
        blob = load_file(path, "sweeps") if path.is_file() else None
        if blob is None or blob["key"] != key:
            with compute_in(precision, dev):
                blob = {"key": key, "sweeps": other.to(dev).sweeps(unet, z, svals, progress=True)}
            atomic_save(blob, path)
        sweeps[name] = blob["sweeps"]
        stats[name] = score(sweeps[name], svals, net.cpu())[1]
    th = calibrate(stats["random (calibration)"])
    out_rows = []
    for name, other in sets.items():
        record, _ = score(sweeps[name], svals, net.cpu(), th)
        out_rows.append({"method": name, "rel": sizes.get(name, getattr(other.shift, "rel", None)), **record})
        print(name, record["mos_proxy"], record["interval"], record["distinct_nameable"], flush=True)
    out = project_path("results/mnist32-cpu/mos_proxy.json")
    write_record(out, {"dataset": "mnist32", "preset": "cpu", "K": d.K, "S": d.S, "M": d.M, "n_noises": n, "seed": seed,
                       "precision": precision, "svals": svals.tolist(),
                       "command": " ".join(["python research/mos_proxy.py", *args]),
                       "thresholds": out_rows[0]["thresholds"], "rows": out_rows,
                       "wall_s": round(time.perf_counter() - start, 1)}, files)
    print(f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
