"""The book's reproduction tables: the paper's numbers beside ours, from the run records.

Every "ours" cell is read from a JSON file that a notebook wrote (``results/<preset>/``)
and carries the preset it ran at; a record that is missing gives "not run" rather than a
number.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

PAPER = {
    "rca": {"mnist32": 0.77, "anime64": 0.85, "celebahq128": 0.93, "afhq128": 0.87},
    "mos": {"mnist32": 0.52, "anime64": 0.36, "celebahq128": 0.28, "afhq128": 0.31},
    "fid": {"anime64": (8.96, 9.21), "celebahq128": (15.79, 16.70), "afhq128": (13.24, 12.65)},
}
RECORDS = ("train_dm", "train", "benchmark", "directions", "real_editing", "properties", "rca_mos", "fid",
           "compare", "equal_change", "rca_ceiling", "h_spectrum", "mos_proxy", "truth")


def load_records(folder: str | os.PathLike) -> dict[str, dict]:
    """Every ``<name>.json`` of :data:`RECORDS` found in ``folder``, by name."""
    folder = Path(folder)
    return {name: json.loads((folder / f"{name}.json").read_text())
            for name in RECORDS if (folder / f"{name}.json").is_file()}


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown pipe table; floats get at most 3 decimals (0.77, not 0.770), and a "|" in
    a cell or the header (|dh|) is escaped so it stays in its cell."""
    def cell(v: object) -> str:
        return (f"{v:.3f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def compare_table(rows: list[dict]) -> str:
    """The comparison's rows (``compare.json``'s ``rows``, one per method) as a table."""
    return markdown_table(
        ["method", "K", "pass (signed, smooth, class kept)", "class kept at S/2 (median)", "change at S/2 (median)",
         "named by a stroke measure", "DCI", "post-hoc RCA (chance)", "FD edits / raw"],
        [[r["method"], r["K"], f"{r['interpretable_fraction']:.0%}", f"{r['median_keep_half']:.0%}",
          r["median_change_half"], f"{r['named_fraction']:.0%}", r["disentanglement"],
          f"{r['posthoc_rca']:.2f} ({r['posthoc_chance']:.2f})", r["fd_ratio"]] for r in rows])


def equal_change_table(own: dict) -> str:
    """The learned set at its own size and the others at equal change (``compare.json``'s
    ``own_size``, from :func:`hdisc.posthoc.score_at_equal_change`) as a table."""
    named = "name_floor" in own  # records from before the null of a name have no such column
    return markdown_table(
        ["method", "size", "|dh| / rms(h) at s=1", "pass (signed, smooth, class kept)", "95% interval over noises"]
        + ([f"pass and named beyond random (abs rho > {own['name_floor']:.2f})"] if named else [])
        + ["signed", "class kept at S/2 (median)", "change at S/2 (median)", "post-hoc RCA (chance)", "FD edits / raw"],
        [[r["method"], r["size"] + ("" if r.get("target_reached", True) else f" (missed: {r['matched_change']:.3f})"),
          "free" if r["rel"] is None else r["rel"], f"{r['interpretable_fraction']:.0%}",
          "{:.0%}-{:.0%}".format(*r["interpretable_interval"]) if r.get("interpretable_interval") else ""]
         + ([f"{r['named_beyond_random']:.0%}"] if named else [])
         + [f"{r['signed_fraction']:.0%}", f"{r['median_keep_half']:.0%}", r["median_change_half"],
            f"{r['posthoc_rca']:.2f} ({r['posthoc_chance']:.2f})", r["fd_ratio"]] for r in own["rows"]])


def rca_ceiling_table(record: dict) -> str:
    """``research/rca_ceiling.py``'s rows: each reader of held-out edit pairs (the model's
    reconstructor as trained, trained on, or fresh) with the pairs it trained on, its RCA, and
    its RCA on the smallest and the largest quarter of |s|."""
    def at(row: dict, i: int) -> str:
        b = row["rca_by_abs_s"][i]
        return f"{b['rca']:.2f} (|s| {b['abs_s'][0]:.1f}-{b['abs_s'][1]:.1f})"

    return markdown_table(
        ["directions", "reconstructor", "pairs it trained on (epochs)", "RCA (chance)", "RCA, smallest edits",
         "RCA, largest edits", "mean |s_hat - s|"],
        [[r["set"], r["reader"], f"{r['n_train']:,} ({r['epochs']})" if r["n_train"] else "none beyond joint training",
          f"{r['rca']:.3f} ({r['chance']:.3f})", at(r, 0), at(r, -1), r["mag_err"]] for r in record["rows"]])


def mos_proxy_table(record: dict) -> str:
    """The MOS proxy (:mod:`hdisc.mos_proxy`) of every family at equal image change: its
    passing share with the 95% interval over noises, the distinct nameable effects, and the
    medians of what it reads."""
    rows = [[r["method"], "as trained" if r["rel"] is None else f"{r['rel']:.3g}", r["mos_proxy"],
             f"{r['interval'][0]:.2f}-{r['interval'][1]:.2f}", r["distinct_nameable"],
             float(np.median(r["consistency"])), float(np.median(r["agreement"])), float(np.median(r["realism"])),
             float(np.median(r["name_rho"]))] for r in record["rows"]]
    return markdown_table(["directions", "|dh| / rms(h)", "MOS proxy", "95% interval", "distinct nameable",
                           "median consistency", "median sign agreement", "median realism",
                           "median stroke-name strength"], rows)


RECOVERED = {"gap": 0.5, "purity": 0.5, "rank_correlation": 0.5}
"""A factor counts as recovered by a set when its best direction leads the second by this
gap, spends this share of its importance on it and moves it monotonically with s."""


def recovered(row: dict) -> list[str]:
    """The factors a set of directions recovers (:data:`RECOVERED`), from a truth.json row."""
    return [f for f in row["gap"] if row["gap"][f] >= RECOVERED["gap"] and row["purity"][f] >= RECOVERED["purity"]
            and abs(row["rank_correlation"][f]) >= RECOVERED["rank_correlation"]]


def truth_table(record: dict) -> str:
    """Every family on shapes32's known factors (``truth.json``): DCI and the mean gap with
    their 95% intervals over noises, the factors each recovers, and its edits' realism."""
    def cell(row: dict, key: str) -> str:
        lo, hi = row["interval"][key]
        return f"{row[key]:.2f} ({lo:.2f}-{hi:.2f})"

    rows = [[r["method"], "as trained" if r["rel"] is None else f"{r['rel']:.3g}", f"{r['median_change_half']:.3f}",
             cell(r, "disentanglement"), cell(r, "completeness"), cell(r, "mean_gap"),
             ", ".join(recovered(r)) or "none", r["confidence_edits"], r["fd_edits_vs_raw"]] for r in record["rows"]]
    return markdown_table(["directions", "|dh| / rms(h)", "change at S/2", "disentanglement", "completeness",
                           "mean gap", "factors recovered", "shape reader's confidence", "FD-ShapeNet to raw"], rows)


def h_spectrum_table(record: dict) -> str:
    """``research/h_spectrum.py``'s rows: each DM's training steps, its samples' FD-MnistNet, and at
    each shifted node (t) how many directions of h it answers within a quarter of the most
    answered one (mean over the noises)."""
    nodes = record["rows"][0]["nodes_t"]
    return markdown_table(
        ["DM", "training steps", "FD-MnistNet of DDIM samples (test halves)"] + [f"t = {t}" for t in nodes],
        [[f"`{r['dm']}`", "" if r["trained_steps"] is None else f"{r['trained_steps']:,}",
          f"{r['quality']['samples']['fd_mnistnet']:.1f} ({r['quality']['real']['fd_mnistnet']:.1f})"]
         + [f"{v:g}" for v in r["answered_0.25"]] for r in record["rows"]])


def _preset(rec: dict) -> str:
    return f"`{rec['preset']}`"


def _steps(train: dict) -> str:
    budget = train.get("steps_budget", train["steps"])
    return f"{train['steps']} steps" + (f" (of the preset's {budget})" if budget != train["steps"] else "")


def benchmark_table(bench: dict) -> tuple[str, str]:
    """The paper's figure 4 (memory and time against M) from a benchmark record, with the
    memory-budgeted chain beside vanilla and the flat chain: (title, table)."""
    from .bench import SERIES, setting_of

    by = {(*setting_of(r), r["M"]): r for r in bench["rows"]}
    skipped = {(r["method"], r.get("budget_share", 1.0), r["M"]): f"skipped: {r['predicted_mb']:.0f} predicted"
               for r in bench["skipped"]}
    series = [key for key, _, _ in SERIES if any((*key, M) in by for M in bench["Ms"])]

    def cell(key: tuple, M: int, field: str) -> object:
        row = by.get((*key, M))
        return row[field] if row else skipped.get((*key, M), "") if field == "peak_mb" else ""

    rows = [[M, *(cell(k, M, "peak_mb") for k in series), *(cell(k, M, "img_per_s") for k in series)]
            for M in bench["Ms"]]
    labels = dict((key, label) for key, label, _ in SERIES)
    where = bench["environment"].get("cuda") or bench["device"]
    title = ("Figure 4: memory and throughput (paper: vanilla passes 24 GB while ours stays flat; "
             f"throughput comparable). Ours: batch {bench['batch']}, {where}, preset "
             f"`{bench['preset']}`; step time chain/vanilla {bench['step_time_ratio']:.2f} at "
             f"M={bench['step_time_ratio_M']}"
             + (f", budget (every step)/vanilla {bench['budget_all_vs_vanilla']:.2f}"
                if "budget_all_vs_vanilla" in bench else "")
             + f"; max relative gradient difference {bench['grad_max_rel_diff']:.1e}")
    head = ["M", *(f"{labels[k]} peak MB" for k in series), *(f"{labels[k]} img/s" for k in series)]
    return title, markdown_table(head, rows)


def reproduction_tables(records: dict[str, dict], dataset: str = "mnist32") -> dict[str, str]:
    """One Markdown table per paper table or claim, keyed by its title."""
    tables: dict[str, str] = {}
    tr, rm = records.get("train"), records.get("rca_mos")
    rca = rm or tr
    rows = [["RCA", PAPER["rca"][dataset], rca["rca"] if rca else "not run", _preset(rca) if rca else "",
             f"K={tr['K']}, M={tr['M']}, batch {tr['batch']}, {_steps(tr)}; chance {1 / tr['K']:.3f}"
             if tr else ""]]
    # RCA's counterweights: an RCA that rises while edits stop being nameable or realistic is no gain
    interp = (records.get("directions") or {}).get("interpretability")
    rows.append(["directions a person can name: signed, smooth, class kept at S/2 (measured by "
                 "hdisc.interpret; complements MOS)", "-",
                 interp["summary"]["interpretable_fraction"] if interp else "not run",
                 _preset(records["directions"]) if interp else "",
                 f"{len(interp['summary']['interpretable'])} of {interp['summary']['K']} directions, "
                 f"{interp['n_images']} noises x {len(interp['svals'])} strengths each" if interp else ""])
    fid = records.get("fid")
    rows.append([f"fidelity: {fid['rows'][0]['features'] if fid else 'FD'} of shifted over raw samples "
                 "(1 = editing costs no realism)", "0.96-1.06 (FID, table 2)",
                 fid["rows"][0]["shifted"] / fid["rows"][0]["raw"] if fid else "not run",
                 _preset(fid) if fid else "", f"n={fid['n']}, DDIM M={fid['M']}" if fid else ""])
    if rm and "rca_uniform_s" in rm:
        rows.insert(1, ["RCA with s uniform in [-S, S] (the paper's form)", PAPER["rca"][dataset],
                        rm["rca_uniform_s"], _preset(rm),
                        f"{rm['rca_n']:,} pairs; the row above draws |s| >= {rm['s_min']:g} as training did"])
    mos = rm.get("mos") if rm else None
    rows.append(["MOS", PAPER["mos"][dataset], mos["mos"] if mos else "none collected",
                 _preset(rm) if rm else "",
                 f"{len(mos['assessors'])} assessors" if mos else "no annotation files"])
    if rm and "mos_proxy" in rm:
        lo, hi = rm["mos_proxy_interval"]
        rows.append(["MOS proxy: realistic, smooth, the same change in every example, nameable (hdisc.mos_proxy; "
                     "thresholds set so random directions at equal change pass <= 10%)", PAPER["mos"][dataset],
                     rm["mos_proxy"], _preset(rm),
                     f"95% interval {lo:.2f}-{hi:.2f} over {rm['mos_proxy_noises']} noises; "
                     f"{rm['distinct_nameable']} distinct nameable effects; random directions "
                     f"{rm['mos_proxy_random']:.2f}"])
    tables["Table 1: RCA and MOS"] = markdown_table(["metric", "paper", "ours", "preset", "our setting"], rows)

    rows = [[f"{d} (paper, FID)", a, b, "`paper`"] for d, (a, b) in PAPER["fid"].items()]
    if fid:
        rows += [[f"{dataset} (ours, {r['features']}, n={fid['n']}, DDIM M={fid['M']})", r["raw"], r["shifted"],
                  _preset(fid)]
                 for r in fid["rows"]]
    tables["Table 2: fidelity of shifted samples (raw vs shifted)"] = markdown_table(
        ["dataset / features", "raw", "shifted", "preset"], rows)

    if records.get("benchmark"):
        tables.update([benchmark_table(records["benchmark"])])

    props = records.get("properties")
    if props:
        rows = [[r["k"], r["edit_change"], r["mean_vs_sample"], r["global_vs_sample"]] for r in props["rows"]]
        tables["Section 5.4: per-sample vs mean vs global shifts on real images (paper: 'almost the same "
               f"effects', no number; ours: preset `{props['preset']}`, relative differences)"] = markdown_table(
            ["direction", "edit size (mean abs)", "mean vs per-sample", "global vs per-sample"], rows)

    edit, dm = records.get("real_editing"), records.get("train_dm")
    rows = []
    if edit:
        rows.append(["100-step DDIM inversion, mean abs reconstruction error", edit["recon_mean_abs_err"],
                     _preset(edit)])
    dirs = records.get("directions")
    if dirs and "mean_abs_similarity_all" in dirs:
        rows.append(["directions: mean absolute cosine between what two directions do to an image (all "
                     "pairs; 1 = collapsed onto one effect, 0 = distinct)", dirs["mean_abs_similarity_all"],
                     _preset(dirs)])
        rows.append(["the same among the 16 leading directions (ranked by change x realism)",
                     dirs["mean_abs_similarity_top16"], _preset(dirs)])
    if dirs and "alike_groups" in dirs:
        groups, K, effects = dirs["alike_groups"], dirs["K"], dirs["distinct_effects"]
        rows.append([f"directions in groups that change an image alike (cosine >= {dirs['alike_threshold']} either "
                     "sign); distinct effects, and the RCA they would allow if a group's members could not be "
                     "told apart", f"{sum(map(len, groups))} of {K} in {len(groups)} groups; {effects} effects, "
                     f"RCA <= {effects / K:.2f}", _preset(dirs)])
    if dm and dm.get("quality"):
        q = dm["quality"]
        rows.append(["DM samples: MnistNet confidence (real digits: "
                     f"{q['real']['mean_confidence']:.3f})", q["samples"]["mean_confidence"], _preset(dm)])
        rows.append(["DM samples (DDIM 20 steps): FD-MnistNet to test digits (test half vs half: "
                     f"{q['real']['fd_mnistnet']:.1f})", q["samples"]["fd_mnistnet"], _preset(dm)])
    cmp = records.get("compare")
    if cmp:
        tables[f"Learned vs training-free directions on one yardstick (no paper counterpart; preset "
               f"`{cmp['preset']}`, |dh| = |s| x {cmp['rel']} x rms(h) for every method)"] = compare_table(cmp["rows"])
        own = cmp.get("own_size")
        if own:
            tables[f"The learned directions as trained, beside random ones of the same |dh| and the others at equal "
                   f"image change (no paper counterpart; preset `{cmp['preset']}`: every other method rescaled until "
                   f"its median change at S/2 is the learned set's, {own['target_change']:.3f})"] = \
                equal_change_table(own)
    more = records.get("equal_change")
    if more:
        tables[f"The same at equal image change on {more['n_interp']} noises per direction (no paper counterpart; "
               f"preset `{more['preset']}`; `{more['command']}`: K x {more['n_interp']} x 9 edits per method, the "
               f"learned set's median change at S/2 {more['target_change']:.3f})"] = equal_change_table(more)
    ceiling = records.get("rca_ceiling")
    if ceiling:
        tables[f"How far a reconstructor can read the directions (paper: RCA {PAPER['rca'][dataset]} by its jointly "
               f"trained reconstructor; ours: preset `{ceiling['preset']}`, the committed directions frozen, "
               f"{ceiling['n_test']:,} held-out pairs with {ceiling['s_min']:g} <= |s| <= {ceiling['S']:g}; "
               f"random directions of the same |dh| ({ceiling['rel']:g} x rms(h))"
               + (f" and of the same image change ({ceiling['rel_equal_change']:.3g} x rms(h), `equal_change.json`)"
                  if ceiling.get("rel_equal_change") else "")
               + f" on the same noises, k and s; `{ceiling['command']}`)"] = rca_ceiling_table(ceiling)
    proxy = records.get("mos_proxy")
    if proxy:
        tables[f"The MOS proxy on every family at equal image change (paper: MOS {PAPER['mos'][dataset]} from "
               f"human marks; ours: preset `{proxy['preset']}`, {proxy['n_noises']} noises x {len(proxy['svals'])} "
               f"strengths per direction, thresholds from a first random set, the `random` row a second one; "
               f"`{proxy['command']}`)"] = mos_proxy_table(proxy)
    spectrum = records.get("h_spectrum")
    if spectrum:
        learned = spectrum.get("learned")
        tables[f"How many directions of h the DM answers (no paper counterpart; preset `{spectrum['preset']}`, "
               f"its M={spectrum['M']} chain's shifted nodes: singular values of d eps / d h at least a quarter of "
               f"the largest, top {spectrum['k']} on {spectrum['n']} noises"
               + (f"; the committed directions' image change ranks with their share of |dh| in the top "
                  f"{learned['r']} at rho " + ", ".join(f"{v:.2f}" for v in learned["spearman"]) + " by node"
                  if learned else "")
               + f"; `{spectrum['command']}`)"] = h_spectrum_table(spectrum)
    if rows:
        tables["Our DM, directions and real-image editing (no paper counterpart)"] = markdown_table(
            ["quantity", "ours", "preset"], rows)
    return tables
