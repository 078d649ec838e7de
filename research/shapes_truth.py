"""Every family of directions on shapes32, scored against the factors that made the data (issue 29).

    python research/shapes_truth.py [preset=cpu] [dm=PATH] [directions=PATH] [n=32] [target=0.05]
        [n_pca=512] [seed=0] [precision=auto]

On the shapes32 DM (default the preset's committed or trained ``dm_ema.pt``), on the preset's
training chain (M, t_stop, clip, K, S): PCA of h pooled over the shifted steps, the Jacobian's
top singular vectors for one image at the chain's first step, supervised directions from the
factors read off ``n_pca`` samples (each shape against the rest, and each continuous factor's
top quartile against its bottom one, the shapes projected out), two random sets, and the
learned directions when ``directions`` (a ``directions.pt``) is given. Every set is rescaled to
equal image change (:func:`hdisc.baselines.matched_size`): its median edit at S/2 moves the
image by ``target`` (mean absolute pixel change in [-1, 1] units), or by the learned set's own
change when there is one. Each direction then edits ``n`` noises at 9 strengths over [-S, S];
every edit's factors are read from its pixels (:mod:`hdisc.factors`) and scored with
:func:`hdisc.truth.truth_scores`, each factor's importance in units of what the first random
set does to it (the second random set is scored as the floor). Realism: the shape reader's
confidence and the Frechet distance in its features of the edits against the raw samples.
Writes ``results/shapes32-<preset>/truth.json``.
"""

from __future__ import annotations

import sys
import time

import torch

from hdisc.baselines import matched_size, median_change
from hdisc.direction_set import DirectionSet, FixedDirections, strengths
from hdisc.factors import load_shape_net
from hdisc.files import project_path, shown_path
from hdisc.metrics import fd
from hdisc.precision import compute_in, resolve_precision
from hdisc.presets import get_preset
from hdisc.runs import find_dm, open_dm, resolve_device, script_settings, write_record
from hdisc.schedule import schedule_of
from hdisc.shapes import FACTORS
from hdisc.training import load_directions
from hdisc.truth import REL, edit_factors, factor_reader, random_floor, truth_families, truth_scores

SETTINGS = {"preset": "cpu|smoke", "dm": "PATH", "directions": "PATH", "n": "N", "target": "X", "n_pca": "N",
            "seed": "N", "precision": "auto|float32|bfloat16", "device": "cpu|cuda"}
def main(*args: str) -> None:
    given = script_settings(args, SETTINGS)
    preset = get_preset("shapes32", given.get("preset", "cpu"))
    n, seed, n_pca = int(given.get("n", 32)), int(given.get("seed", 0)), int(given.get("n_pca", 512))
    dev = resolve_device(given.get("device", "auto"))
    precision = resolve_precision(given.get("precision", "auto"), dev)
    start = time.perf_counter()
    dm_path = find_dm(given.get("dm", ""), preset)
    if dm_path is None:
        raise SystemExit("no shapes32 DM: pretrain one (python -m hdisc.pretrain --dataset shapes32) or pass dm=PATH")
    unet, unet_cfg = open_dm(dm_path, preset)
    net = load_shape_net()
    cfg = preset.discovery
    base = DirectionSet.of(FixedDirections(torch.zeros(cfg.K, *unet_cfg.h_shape), REL), cfg, schedule_of(unet))
    files = {"dm": dm_path, "shape_net": project_path("models/shape_net.pt"), "directions": None}
    with compute_in(precision, dev):
        sets, x0 = truth_families(unet, base, net, n_pca, seed, dev)
        target = float(given.get("target", 0.05))
        if given.get("directions"):
            files["directions"] = project_path(given["directions"])
            model, dcfg = load_directions(files["directions"], unet_cfg)
            learned = DirectionSet.of(model.shift, dcfg, schedule_of(unet))
            sets = {"learned, as trained": learned, **sets}
            target = median_change(unet, learned, n=4, seed=seed + 20, device=dev)
        svals = strengths(cfg.S, 9)
        z = torch.randn((n, *x0.shape[1:]), generator=torch.Generator().manual_seed(seed + 10)).to(dev)
        read = factor_reader(net)
        rows, values = [], {}
        for name, dirs in sets.items():
            size, change = None, target
            if not name.startswith("learned"):
                size, change = matched_size(unet, dirs, target, REL, n=4, seed=seed + 20, device=dev)
                dirs = dirs.at_size(size)
            values[name], conf = edit_factors(unet, dirs.to(dev), z, svals, read)
            edits = torch.cat([dirs.sweep(unet, z[:8], k, svals[[0, -1]]).flatten(0, 1).cpu() for k in range(dirs.K)])
            rows.append({"method": name, "rel": size, "median_change_half": change, "names": list(dirs.names),
                         "confidence_edits": float(conf.mean()), "fd_edits_vs_raw": fd(net.features, edits, x0)})
            print(name, "edited", flush=True)
    floor = random_floor(values["random (floor)"], svals, cfg.S)
    for row in rows:
        row.update(truth_scores(values[row["method"]], svals, cfg.S, floor, seed=seed))
        print(row["method"], {k: round(row[k], 3) for k in ("disentanglement", "completeness", "mean_gap")},
              row["interval"], flush=True)
    raw_conf = float(net.read(x0)[1].mean())
    out = project_path(f"results/{preset.name}/truth.json")
    write_record(out, {"dataset": "shapes32", "preset": preset.scale, "K": cfg.K, "S": cfg.S, "M": cfg.M,
                       "t_stop": cfg.t_stop, "n_noises": n, "n_pca": n_pca, "seed": seed, "target_change": target,
                       "precision": precision, "factors": list(FACTORS), "floor": floor.tolist(),
                       "confidence_raw": raw_conf, "command": "python research/shapes_truth.py " + " ".join(args),
                       "rows": rows, "wall_s": round(time.perf_counter() - start, 1)}, files)
    print(f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
