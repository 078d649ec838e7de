"""The comparison at equal image change on more noises than the book's compare chapter (issue 11).

    python research/equal_change.py [n_interp=16] [seed=0] [device=cpu]

The compare chapter scores every method at equal image change on 4 noises per direction
(K x 4 x 9 edits each), too few to tell a passing share of 25% from one of 31%. This runs
the same section (:func:`hdisc.posthoc.score_at_equal_change`) with the chapter's other
settings on the committed cpu model (``models/mnist32-cpu/``) and ``n_interp`` noises, and
writes ``results/mnist32-cpu/equal_change.json`` with ``rows`` as the chapter's
``own_size`` and the command that made it. The reproduction page shows it when present.

A run takes about 50 minutes on two cores. It keeps each scored row in
``runs/equal_change/rows.json`` as it goes; a run stopped part-way and started again with
the same settings on the same model files scores only the rows still missing. The record
is written (atomically) only when every row is there, and then the rows file is removed.
"""

from __future__ import annotations

import json
import sys
import time

from hdisc.baselines import every_method, training_free
from hdisc.data import held_out_images
from hdisc.direction_set import DirectionSet
from hdisc.files import project_path, sha256, shown_path, write_json
from hdisc.metrics import mnist_net
from hdisc.posthoc import score_at_equal_change
from hdisc.runs import open_trained, resolve_device, script_settings, write_record

CHAPTER = {"rel": 0.5, "n_pca": 1000, "jacobian_iters": 10, "n_train": 128, "n_test": 64, "epochs": 8}
"""The compare chapter's defaults for everything but ``n_interp`` (experiments/compare.py)."""


def main(*args: str) -> None:
    given = script_settings(args, {"n_interp": "N", "seed": "N", "device": "cpu|cuda"})
    n_interp, seed = int(given.get("n_interp", 16)), int(given.get("seed", 0))
    if n_interp < 1:
        raise SystemExit(f"n_interp must be >= 1 (noises per direction), got {n_interp}")
    dev = resolve_device(given.get("device", "auto"))
    start = time.perf_counter()
    cfg, unet, model, d, files = open_trained("mnist32", "cpu", device=dev)
    dirs = DirectionSet.of(model.shift, d, unet)
    net = mnist_net(project_path("models/mnist_net.pt"))
    methods, diag = every_method(unet, dirs, net, CHAPTER["n_pca"], CHAPTER["rel"], seed=seed,
                                 jacobian_iters=CHAPTER["jacobian_iters"], device=dev)
    partial = project_path("runs/equal_change/rows.json")
    settings = {"n_interp": n_interp, "seed": seed, **CHAPTER, "models": {r: sha256(f) for r, f in files.items() if f}}
    kept = json.loads(partial.read_text()) if partial.is_file() else {}
    done = kept["rows"] if kept.get("settings") == settings else []
    if done:
        print(f"resuming: {len(done)} row(s) already scored in {shown_path(partial)}")

    def keep(rows: list[dict]) -> None:
        write_json(partial, {"settings": settings, "rows": rows})

    own = score_at_equal_change(unet, dirs, training_free(methods), net, held_out_images(cfg.data, None, 1000),
                                diag["h_shape"], rel=CHAPTER["rel"], n_interp=n_interp, n_train=CHAPTER["n_train"],
                                n_test=CHAPTER["n_test"], epochs=CHAPTER["epochs"], seed=seed, device=dev,
                                done=done, on_row=keep)
    out = project_path("results/mnist32-cpu/equal_change.json")
    write_record(out, {"dataset": "mnist32", "preset": "cpu", "K": d.K, "S": d.S, "M": d.M,
                       "command": "python research/equal_change.py " + " ".join(args), "n_interp": n_interp,
                       "seed": seed, **CHAPTER, **own, "wall_s": round(time.perf_counter() - start, 1)}, files)
    partial.unlink(missing_ok=True)
    print(f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
