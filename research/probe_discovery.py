"""Short discovery runs that ask which setting makes learning start sooner (issue 3, item 7).

    python research/probe_discovery.py NAME [field=value ...] [init_from=PATH] [n_eval=N] [evaluate=true] [device=cuda]
        [precision=auto|float32|bfloat16] [budget=auto|0|BYTES] [effects=true] [dm=PATH]

Fields are DiscoveryConfig's (M, batch, steps, lr, lambda_adv, shift_norm, clip, ...) over
the cpu mnist32 preset; ``init_from`` warm-starts from a directions.pt. Trains into
runs/probe/NAME (resumable), then writes runs/probe/NAME/probe@STEP.json with the logged curve,
the RCA on 256 fresh pairs (``rca``, with |s| >= s_min as the run trained, and
``rca_uniform_s``, s uniform in [-S, S] as the paper scores it), the interpretability
evaluation (hdisc.interpret) on ``n_eval`` noises (default 16) at 9 strengths, the MOS proxy
of the same sweeps with random directions at the probe's own image change beside it
(:func:`mos_proxy_of`; ``mos_proxy``, ``mos_proxy_random``, ``distinct_nameable``), the
directions' distinct effects (as the directions chapter counts them: alike groups on 16
noises) and FD-MnistNet of shifted over raw samples (500 each),
and adds the same entry (without the full log) to results/mnist32-cpu/probes.json.

``device`` (default cpu) trains and scores there, ``precision`` (default auto: bfloat16 on a CPU
with AMX bfloat16 tiles, where it measured 1.6x faster, float32 elsewhere) is what training
computes in, recorded in the entry's ``device``; ``budget`` (default auto: half the free memory)
is the chain's memory for kept graphs (:mod:`hdisc.chain`: time and memory, not the result),
recorded as ``chain_budget``; the scores' noises are drawn from seeded
CPU generators either way. Every entry is named ``NAME@STEP``, the step its directions were
scored at (``NAME@STEP-nN`` when scored on N noises other than 16; probes recorded before
this rule keep their bare names). ``evaluate=true`` trains nothing: it scores the run's latest
``directions.pt`` (a long run may still be writing more), a point along the run, with the
settings it was trained with (fields given beside it must match them).
``dm`` (default the committed ``models/mnist32-cpu/dm_ema.pt``) trains and scores on another DM
file of the same UNet config, recorded in the entry as ``dm`` (path and sha256); give it again
with ``evaluate=true`` or ``effects=true``.
``effects=true`` adds the distinct effects to the recorded entry NAME (or NAME@STEP) of a
probe scored before the script counted them; it checks that the run's directions.pt is still
at the entry's step.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import torch

from hdisc.backbone import load_dm
from hdisc.baselines import matched_size, random_set
from hdisc.chain import parse_budget
from hdisc.data import held_out_images
from hdisc.direction_set import DirectionSet, strengths
from hdisc.directions import alike_groups, distinct_effects, edit_pairs, mean_abs_offdiag, ranked
from hdisc.discovery import reconstructor_accuracy
from hdisc.dm import DM
from hdisc.files import load_file, project_path, sha256, shown_path, write_json
from hdisc.interpret import evaluation_noises, interpretability, realism
from hdisc.metrics import mnist_net
from hdisc.mos_proxy import Thresholds, score
from hdisc.precision import resolve_precision
from hdisc.presets import Preset, get_preset, override
from hdisc.runs import find_dm
from hdisc.training import DISCOVERY_CHECKPOINT, load_directions, train_discovery, trained_on

SCORE = {"rca_pairs": 256, "fd_samples": 500, "effect_noises": 16}
EVAL_SEED = 2
"""The seed of the interpretability evaluation's noises, which the random floor edits too."""
RANDOM_REL = 0.25
"""Where the search for random directions at a probe's image change starts: |dh| = 0.25 rms(h)
changes an image as much as the committed model's directions do (equal_change.json: 0.248)."""
"""How much every probe is scored on: fresh pairs for the RCA, shifted and raw samples (and
test digits) for FD-MnistNet, noises for the distinct effects (the directions chapter's)."""


def effects_of(unet: torch.nn.Module, dirs: DirectionSet, model: torch.nn.Module, device: str) -> dict:
    """How many distinct effects the directions have, as the directions chapter counts them:
    alike groups (|cosine| >= 0.7 between image changes) on 16 noises of seed 0; and the same
    with the signs kept apart (``_by_sign``: linked where the mean over -S and +S of |cosine|
    is >= 0.7), which also links a direction that does the same at both signs to a signed one."""
    ranking = ranked(unet, dirs, model.discriminator, SCORE["effect_noises"], seed=0, device=device)
    groups, by_sign = alike_groups(ranking.similarity), alike_groups(ranking.similarity_by_sign.abs().mean(0))
    return {"alike_groups": groups, "distinct_effects": distinct_effects(groups, dirs.K),
            "mean_abs_similarity": round(mean_abs_offdiag(ranking.similarity), 4),
            "alike_groups_by_sign": by_sign, "distinct_effects_by_sign": distinct_effects(by_sign, dirs.K)}


def open_dm(given: str, preset: Preset, device: str) -> tuple[DM, dict | None]:
    """The DM file ``given`` (or the committed one when empty) on ``device``, and what an entry
    records of it: None for the committed DM, else its path and sha256."""
    path = project_path(given) if given else find_dm("", preset)
    unet = load_dm(path, preset.unet)
    return unet.to(device), {"path": shown_path(path), "sha256": sha256(path)} if given else None


def add_effects(name: str, preset: Preset, device: str, dm: str) -> None:
    """Score the distinct effects of the recorded probe ``name`` (NAME or NAME@STEP, whose
    directions are runs/probe/NAME/directions.pt) and add them to its entry in probes.json:
    for probes recorded before the script counted them."""
    record = project_path(f"results/{preset.name}/probes.json")
    book = json.loads(record.read_text())
    entry = next((p for p in book["probes"] if p["name"] == name), None)
    if entry is None:
        raise SystemExit(f"no probe {name!r} in {record}: effects=true adds to a recorded probe")
    run = project_path("runs/probe") / name.split("@")[0]
    step = load_file(run / DISCOVERY_CHECKPOINT, "training checkpoint", keys=("step",))["step"]
    if step != entry["steps"]:
        raise SystemExit(f"{name} was scored at step {entry['steps']}; {run} is now at step {step}")
    model, cfg = load_directions(run / "directions.pt", preset.unet)
    if entry.get("dm", {}).get("sha256") != (sha256(project_path(dm)) if dm else None):  # the same file, wherever
        raise SystemExit(f"{name} was trained on DM {entry.get('dm', {}).get('path', 'committed')}: give dm= as then")
    model, unet = model.to(device), open_dm(dm, preset, device)[0]
    entry["effects"] = effects_of(unet, DirectionSet.of(model.shift, cfg, unet), model, device)
    write_json(record, book)
    print(name, entry["effects"])


def mos_proxy_of(unet: DM, dirs: DirectionSet, scores: dict, net: torch.nn.Module, n_eval: int,
                 device: str) -> dict:
    """The MOS proxy (:mod:`hdisc.mos_proxy`) of a probe's directions, on the sweeps of its
    interpretability evaluation (``scores``, :func:`hdisc.interpret.interpretability` on
    ``n_eval`` noises of :data:`EVAL_SEED`), with the thresholds of ``results/mnist32-cpu/mos_proxy.json``
    (set on random directions at the committed model's image change: one yardstick for every
    probe); beside it, as ``mos_proxy_random``, random directions at this probe's own image
    change (:func:`hdisc.baselines.matched_size`) on the same noises, scored with the same
    thresholds: the floor a probe's number is read against. Empty without that record."""
    record = project_path("results/mnist32-cpu/mos_proxy.json")
    if not record.is_file():
        print(f"no MOS proxy thresholds in {shown_path(record)} (python research/mos_proxy.py): proxy not scored")
        return {}
    th = Thresholds(**json.loads(record.read_text())["thresholds"])
    svals = strengths(dirs.S, len(scores["svals"]))
    learned, _ = score(scores["sweeps"], svals, net.cpu(), th)
    target = scores["summary"]["median_change_half"]
    z = evaluation_noises(unet, n_eval, EVAL_SEED, device)
    rand = random_set(dirs, unet.config.h_shape, RANDOM_REL, seed=101)
    size, change = matched_size(unet, rand, target, RANDOM_REL, device=device) if target > 0 else (RANDOM_REL, 0.0)
    floor, _ = score(rand.at_size(size).sweeps(unet, z, svals, progress=False), svals, net.cpu(), th)
    return {"mos_proxy": learned["mos_proxy"], "mos_proxy_interval": learned["interval"],
            "distinct_nameable": learned["distinct_nameable"], "mos_proxy_passing": learned["passing"],
            "mos_proxy_random": floor["mos_proxy"], "mos_proxy_random_interval": floor["interval"],
            "mos_proxy_random_size": {"rel": size, "median_change_half": change, "target": target}}


def main(name: str, *overrides: str) -> None:
    preset = get_preset("mnist32", "cpu")
    fields, init_from, n_eval, only_evaluate, device, precision = [], None, 16, False, "cpu", "auto"
    only_effects, dm, budget = False, "", "auto"
    for item in overrides:
        key, value = item.split("=", 1)
        if key == "init_from":
            init_from = project_path(value)
        elif key == "n_eval":
            n_eval = int(value)
        elif key == "device":
            device = value
        elif key == "precision":
            precision = value
        elif key == "evaluate":
            only_evaluate = value.lower() == "true"
        elif key == "effects":
            only_effects = value.lower() == "true"
        elif key == "dm":
            dm = value
        elif key == "budget":
            budget = parse_budget(value)
        else:
            fields.append(item)
    if only_effects:
        return add_effects(name, preset, device, dm)
    cfg = override(preset.discovery, fields)
    unet, dm_entry = open_dm(dm, preset, device)
    out = project_path("runs/probe") / name
    if only_evaluate:
        checkpoint = load_file(out / DISCOVERY_CHECKPOINT, "training checkpoint", keys=("step", "log"))
        result = {"init_from": checkpoint.get("init_from"), "steps": checkpoint["step"],
                  "wall_s": checkpoint["wall_s"], "log": checkpoint["log"],
                  "trained_on": checkpoint.get("trained_on")}
        name = f"{name}@{checkpoint['step']}" + (f"-n{n_eval}" if n_eval != 16 else "")  # other noise counts beside
    else:
        result = train_discovery(unet, cfg, out, init_from=init_from, device=device,
                                 precision=precision, progress=True, log_every=10, budget=budget)
        name = f"{name}@{result['steps']}"  # the step it was scored at, as for a point along the run
    # scored with the run's own settings; any given beside evaluate=true must match them
    model, cfg = load_directions(out / "directions.pt", preset.unet, None if only_evaluate and not fields else cfg)
    model = model.to(device)
    dirs = DirectionSet.of(model.shift, cfg, unet)
    rca = reconstructor_accuracy(unet, model, cfg, dirs.steps, SCORE["rca_pairs"], 32, torch.Generator().manual_seed(1),
                                 device)
    uniform = rca if cfg.s_min == 0 else reconstructor_accuracy(  # s uniform in [-S, S], as the paper scores it
        unet, model, dataclasses.replace(cfg, s_min=0.0), dirs.steps, SCORE["rca_pairs"], 32,
        torch.Generator().manual_seed(1), device)
    net = mnist_net(project_path("models/mnist_net.pt"))
    scores = interpretability(unet, dirs, n_eval, net, seed=EVAL_SEED, device=device)
    proxy = mos_proxy_of(unet, dirs, scores, net, n_eval, device)
    real = held_out_images(preset.data, None, SCORE["fd_samples"])
    raw, shifted, _, _ = edit_pairs(unet, dirs, SCORE["fd_samples"], 1, seed=3, batch=100, device=device)
    fidelity = realism(net, net.features, raw, shifted, real)
    effects = effects_of(unet, dirs, model, device)
    entry = {"name": name, "config": dataclasses.asdict(cfg), "init_from": result["init_from"],
             "steps": result["steps"], **rca, "rca_uniform_s": uniform["rca"], **proxy,
             "interpretability": scores["summary"], "effects": effects,
             "fidelity": fidelity,
             "n_eval": n_eval, "wall_s": result["wall_s"], "threads": torch.get_num_threads(),
             "chain_budget": result.get("chain_budget"),
             # what trained it
             "device": result["trained_on"] or trained_on(device, resolve_precision(precision, device)),
             "scored_on": trained_on(device),  # scores move a little between machines (probe r2 in the README)
             "ce_curve": [[e["step"], round(e["l_ce"], 4)] for e in result["log"]]}
    if dm_entry:  # trained on a DM other than the committed one
        entry["dm"] = dm_entry
    if cfg.lambda_div:  # the effect penalty's own measure along the run
        entry["overlap_curve"] = [[e["step"], round(e["overlap"], 4)] for e in result["log"]]
    write_json(out / f"probe@{name.split('@')[1]}.json", {**entry, "log": result["log"]})
    record = project_path(f"results/{preset.name}/probes.json")  # every probe, for the book's trade-off plot
    book = json.loads(record.read_text()) if record.is_file() else {"probes": []}
    book["probes"] = [p for p in book["probes"] if p["name"] != name] + [entry]
    write_json(record, book)
    print(name, rca, scores["summary"], fidelity, f"{result['wall_s']:.0f}s")


if __name__ == "__main__":
    main(*sys.argv[1:])
