"""How far can a reconstructor read the committed directions? (issue 11)

    python research/rca_ceiling.py [n_train=16384] [n_test=2048] [epochs=10] [seed=0] [only=learned|random]
        [device=cpu]

RCA (paper 5.5) is the accuracy of the reconstructor that trained with the directions. When
it is low, either the directions are hard to tell apart or that reconstructor is not done
learning. This separates the two on the committed cpu model (``models/mnist32-cpu/``): it
draws a pool of ``n_train`` edit pairs of the frozen directions (4 edits per noise, k and s
drawn as training and RCA draw them, |s| >= the preset's ``s_min``) and ``n_test`` held-out
pairs (one per noise), and reads the held-out pairs with

- the reconstructor as trained (the RCA of ``train.json``, on more pairs);
- that reconstructor trained on for ``epochs`` passes over the first quarter of the pool, and
  over all of it (:func:`hdisc.posthoc.posthoc_rca`): a learning curve, which says whether more
  pairs would still raise it;
- a fresh reconstructor on the same pools;
- a fresh reconstructor on random directions of the same |dh| (the model's cap) on the same
  noises, k and s: the floor, how well any 32 edits of that size can be told apart;
- the same on those random directions at equal image change (``random-equal-change``: the
  size ``research/equal_change.py`` matched, read from ``equal_change.json`` when that record
  was computed from these model files; random edits of equal |dh| change the image less).

Writes ``results/mnist32-cpu/rca_ceiling.json``. The pairs are kept in chunks under
``runs/rca_ceiling/``, each with the settings and model hashes it was drawn with, so a run
stopped part-way draws only the chunks still missing. ``only=SET`` scores one set and keeps
its rows there (two sets can run at once, one per core); a later run without it takes them
and writes the record. The committed record's sets took 3,416 s (learned) and 2,481 s (random)
at one thread each, run at once, and 5,410 s (random-equal-change) beside two other jobs; most
of it draws the pairs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from hdisc.backbone import capture_h
from hdisc.baselines import random_set
from hdisc.direction_set import DirectionSet
from hdisc.directions import edit_pairs
from hdisc.files import atomic_write, project_path, sha256, shown_path, write_json
from hdisc.posthoc import posthoc_rca, read_pairs
from hdisc.runs import computed_from, open_trained, resolve_device, script_settings, write_record

CHUNK = 256
"""Noises per chunk of the pool (4 edits each): what a stopped run loses at most."""

SETS = ("learned", "random", "random-equal-change")


def equal_change_size(files: dict[str, Path]) -> float | None:
    """The size (|dh| / rms(h) at s = 1) at which ``equal_change.json``'s random directions
    moved the image as much as the learned ones, if that record was computed from ``files``."""
    path = project_path("results/mnist32-cpu/equal_change.json")
    record = json.loads(path.read_text()) if path.is_file() else {}
    if not record or not computed_from(record, files):
        return None
    return next((r["rel"] for r in record["rows"] if (r["method"], r["size"]) == ("random", "equal change")), None)


def pool(unet: torch.nn.Module, dirs: DirectionSet, folder: Path, n: int, per_noise: int, seed: int,
         settings: dict, device: torch.device) -> tuple[torch.Tensor, ...]:
    """``n`` edit pairs of ``dirs`` (``per_noise`` per noise), drawn in chunks of :data:`CHUNK`
    noises (chunk i from seed ``seed + i``) and kept in ``folder``; chunks drawn before with the
    same ``settings`` are read back instead."""
    folder.mkdir(parents=True, exist_ok=True)
    chunks = []
    for i in range(-(-n // (CHUNK * per_noise))):
        path = folder / f"chunk-{i}.pt"
        kept = torch.load(path, weights_only=True) if path.is_file() else {}
        if kept.get("settings") != json.dumps(settings, sort_keys=True):
            pairs = edit_pairs(unet, dirs, CHUNK, per_noise, seed=seed + i, s_min=settings["s_min"], device=device)
            kept = {"settings": json.dumps(settings, sort_keys=True), "pairs": pairs}
            atomic_write(path, lambda f, kept=kept: torch.save(kept, f))  # a stopped run leaves no half chunk
        chunks.append(kept["pairs"])
    return tuple(torch.cat(parts)[:n] for parts in zip(*chunks, strict=True))


def main(*args: str) -> None:
    given = script_settings(args, {"n_train": "N", "n_test": "N", "epochs": "N", "seed": "N", "only": "|".join(SETS),
                                   "device": "cpu|cuda"})
    n_train, n_test = int(given.get("n_train", 16384)), int(given.get("n_test", 2048))
    epochs, seed, only = int(given.get("epochs", 10)), int(given.get("seed", 0)), given.get("only")
    if n_train < 16 or n_test < 1 or epochs < 1:
        raise SystemExit(f"n_train must be >= 16 and n_test, epochs >= 1; got {n_train}, {n_test}, {epochs}")
    if only not in (None, *SETS):
        raise SystemExit(f"only must be one of {SETS}, got {only!r}")
    dev = resolve_device(given.get("device", "auto"))
    cfg, unet, model, d, files = open_trained("mnist32", "cpu", device=dev)
    unet.eval()
    model.eval()
    learned = DirectionSet.of(model.shift, d, unet)
    if d.shift_norm == "free":
        raise SystemExit("the committed shift block has no cap (shift_norm='free'): no |dh| to give random directions")
    with torch.no_grad(), capture_h(unet) as store:
        unet(torch.zeros(1, unet.in_channels, unet.image_size, unet.image_size, device=dev),
             torch.zeros(1, dtype=torch.long, device=dev))
    sets = {"learned": learned, "random": random_set(learned, tuple(store[0].shape[1:]), d.shift_rms, seed)}
    equal_size = equal_change_size(files)
    if equal_size is not None:  # the same random directions (same seed), larger: equal_change.json's size
        sets["random-equal-change"] = sets["random"].at_size(equal_size)
    if only and only not in sets:
        raise SystemExit(f"{only}: no equal-change size for these model files in results/mnist32-cpu/"
                         "equal_change.json (run research/equal_change.py first)")
    settings = {"seed": seed, "s_min": d.s_min, "models": {r: sha256(f) for r, f in files.items() if f}}
    scored = {"n_train": n_train, "n_test": n_test, "epochs": epochs, **settings}  # what a set's rows hold for
    runs = project_path("runs/rca_ceiling")
    quarter = n_train // 4
    for name in [only] if only else sets:
        kept = runs / name / "rows.json"
        if kept.is_file() and json.loads(kept.read_text())["settings"] == scored:
            print(f"{name}: scored before ({shown_path(kept)})")
            continue
        began = time.perf_counter()
        dirs = sets[name].to(dev)
        # the same noises, k and s for every set (chunk seeds from seed), so the sets differ only in directions
        train = pool(unet, dirs, runs / name / "train", n_train, 4, 1000 * (seed + 1), settings, dev)
        test = pool(unet, dirs, runs / name / "test", n_test, 1, 1000 * (seed + 1) + 500, settings, dev)
        rows = []
        starts = {"fresh": None}
        if name == "learned":  # the model's own reconstructor, as it is and trained on
            rows.append({"set": name, "reader": "as trained", "n_train": 0, "epochs": 0,
                         **read_pairs(model.reconstructor, test), "chance": 1 / d.K, "n_test": n_test})
            starts = {"as trained, then refit": model.reconstructor, **starts}
        for reader, net in starts.items():
            for n in (quarter, n_train):
                fit = posthoc_rca(tuple(p[:n] for p in train), test, d.K, epochs=epochs, seed=seed, net=net)
                rows.append({"set": name, "reader": reader, **fit})
                print(name, reader, fit, flush=True)
        write_json(kept, {"settings": scored, "rows": rows, "wall_s": round(time.perf_counter() - began, 1)})
    if only:
        return
    done = [json.loads((runs / name / "rows.json").read_text()) for name in sets]
    out = project_path("results/mnist32-cpu/rca_ceiling.json")
    write_record(out, {"dataset": "mnist32", "preset": "cpu", "K": d.K, "S": d.S, "M": d.M, "s_min": d.s_min,
                       "rel": d.shift_rms, "rel_equal_change": equal_size,
                       "command": "python research/rca_ceiling.py " + " ".join(args),
                       "n_train": n_train, "n_test": n_test, "epochs": epochs, "seed": seed,
                       "rows": [r for kept in done for r in kept["rows"]],
                       "wall_s": round(sum(kept["wall_s"] for kept in done), 1)}, files)
    print(f"wrote {shown_path(out)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
