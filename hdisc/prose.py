"""The "what this shows" paragraph that ends each chapter, filled from its record.

Every number in these paragraphs is read from the chapter's JSON record (never typed in),
and each paragraph says what the numbers do not show as plainly as what they do: an RCA
is never reported without the fidelity and interpretability beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .report import recovered


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _train_dm(r: dict) -> str:
    q = r.get("quality")
    text = (f"The DM trained {r['steps']:,} steps (`{r['preset']}` preset; final noise-prediction loss "
            f"{r['final_loss']:.4f}).")
    if q and "fd_shapenet" in q["samples"]:
        d, real = q["samples"], q["real"]
        worst = max(d["factor_distance"], key=d["factor_distance"].get)
        text += (f" Read by the factor readers on {q['n']:,} DDIM-{r['sampling']['steps']} samples: FD-ShapeNet "
                 f"{d['fd_shapenet']:.1f} against held-out images (one half of them to the other: "
                 f"{real['fd_shapenet']:.1f}), shape frequencies {d['shape_tv']:.3f} from the data's (total "
                 "variation), "
                 f"{_pct(d['empty'])} of samples without a shape, and each factor's distribution within "
                 f"{max(d['factor_distance'].values()):.3f} of its range from the data's (Wasserstein-1; the farthest "
                 f"is {worst}).")
    elif q:
        text += (f" On DDIM-{r['sampling']['steps']} samples the digit classifier is "
                 f"{q['samples']['mean_confidence']:.2f} confident (real test digits: "
                 f"{q['real']['mean_confidence']:.2f}) and FD-MnistNet to test digits is "
                 f"{q['samples']['fd_mnistnet']:.1f} (one half of the test set to the other: "
                 f"{q['real']['fd_mnistnet']:.1f}): the samples are recognisable digits, but measurably less "
                 "clean than real ones, and the directions can only be as clean as the samples they edit.")
    return text


def _train(r: dict) -> str:
    chance, n = 1 / r["K"], r.get("rca_n", 256)
    low = r["rca"] - 1.96 * math.sqrt(r["rca"] * (1 - r["rca"]) / n)  # the 95% interval's lower end over n pairs
    text = (f"After {r['steps']:,} steps (`{r['preset']}` preset, K={r['K']}, M={r['M']}, batch {r['batch']}), the "
            f"reconstructor recognises the direction of {_pct(r['rca'])} of {n:,} fresh pairs "
            f"(chance {_pct(chance)}). ")
    if low <= chance:
        return text + ("That is within chance of guessing: the directions are not yet told apart, and nothing "
                       "below says what they do.")
    return text + (f"That says the directions differ, not that they are useful: the discriminator gives "
                   f"{r['d_fake']:.2f} to shifted samples against {r['d_real']:.2f} to unshifted ones (the paper "
                   "reports about 0.5 for both), and whether a person could name the edits is measured in the "
                   "directions chapter, not here.")


def _benchmark(r: dict) -> str:
    Ms = r["Ms"]
    chain = [x["peak_mb"] for x in r["rows"] if x["method"] == "chain"]
    vanilla = [x["peak_mb"] for x in r["rows"] if x["method"] == "vanilla"]
    text = (f"Back-propagating through the chain node by node keeps peak memory between {min(chain):.0f} and "
            f"{max(chain):.0f} MB for M = {Ms[0]}..{Ms[-1]} (batch {r['batch']}, {r['device']})")
    if vanilla:
        text += f", while vanilla autograd grows to {max(vanilla):.0f} MB"
    text += (f"; every method's gradients agree with vanilla's to a relative {r['grad_max_rel_diff']:.1e}. The price "
             f"of flat memory is time: a step costs {r['step_time_ratio']:.2f}x the vanilla step at "
             f"M={r['step_time_ratio_M']} on this device (each step's forward pass runs once more during the "
             "backward pass).")
    if "budget_all_vs_vanilla" in r:
        text += (f" Given memory for every step's graph, the budgeted chain recomputes nothing and costs "
                 f"{r['budget_all_vs_vanilla']:.2f}x vanilla (M={r['budget_all_vs_vanilla_M']})")
    if "budget_half_vs_chain" in r:
        text += (f"; given half, it costs {r['budget_half_vs_chain']:.2f}x the flat chain at "
                 f"M={r['budget_half_vs_chain_M']} and peaks at {r['budget_half_peak_mb']:.0f} MB")
    return text + "."


def _directions(r: dict) -> str:
    interp = r.get("interpretability")
    lead = r["order"][0]
    groups = r.get("alike_groups") or []
    text = (f"The direction shown first is {lead} (change {r['change'][0]:.3f}, realism {r['realism'][0]:.2f}); "
            f"the mean |cosine| between two directions' image changes is {r['mean_abs_similarity_all']:.2f}, so "
            + ("most do different things" if r["mean_abs_similarity_all"] < 0.5 else "many do the same thing")
            + ("." if not groups else _alike(groups, r["K"], r["alike_threshold"], r["distinct_effects"])))
    if not interp:
        return text + " No interpretability evaluation was run for this dataset."
    s = interp["summary"]
    rows = interp["directions"]
    named = [x for x in rows if x["attribute"]]
    text += (f" Measured on {interp['n_images']} noises at {len(interp['svals'])} strengths, "
             f"{len(s['interpretable'])} of {s['K']} directions ({_pct(s['interpretable_fraction'])}"
             + (f"; 95% bootstrap interval over the noises {_pct(s['interpretable_interval'][0])}-"
                f"{_pct(s['interpretable_interval'][1])}" if "interpretable_interval" in s else "")
             + f") are signed, smooth and keep the digit at |s| = S/2: {_pct(s['signed_fraction'])} move the image "
             f"in opposite ways for opposite signs, {_pct(s['smooth_fraction'])} grow without a jump, and the "
             f"classifier keeps the digit in {_pct(s['median_keep_half'])} of the edits at |s| = S/2 for the median "
             "direction"
             + (f" and in {_pct(s['median_keep_full'])} at |s| = S." if "median_keep_full" in s else "."))
    if named:
        best = max(named, key=lambda x: abs(x["attribute_rho"]))
        text += (f" A stroke measure names {_pct(s['named_fraction'])} of them (the clearest: direction "
                 f"{best['k']}, {best['attribute']}, rho {best['attribute_rho']:.2f}); disentanglement "
                 f"{s['disentanglement']:.2f} (1: one measure per direction).")
    if interp.get("named_beyond") is not None:
        beyond = interp["named_beyond"]
        text += (f" A name counts beyond chance only when its |rho| exceeds {interp['name_floor']:.2f}, the 95th "
                 "percentile over random directions that change the image as much (`equal_change.json`): "
                 + (f"{len(beyond)} of {s['K']} directions pass and clear it ({', '.join(map(str, beyond))})."
                    if beyond else "none of the directions that pass clears it."))
    failing = [x for x in rows if not x["passes"]]
    if failing:
        lose = sum(x["keep_half"] < 0.8 for x in failing)
        text += (f" Of the {len(failing)} that fail, {lose} keep the digit in fewer than 80% of their edits at "
                 f"|s| = S/2, {sum(not x['signed'] for x in failing)} move the image alike for +s and -s and "
                 f"{sum(not x['smooth'] for x in failing)} jump.")
    if s["interpretable_fraction"] < 0.5 and s["median_keep_half"] < 0.8:
        text += (" Most directions therefore change what the digit is rather than how it is drawn: a high RCA "
                 "here rewards edits that are easy to recognise, not edits a person can name.")
    return text


def _alike(groups: list[list[int]], K: int, threshold: float, effects: int) -> str:
    """The clause on directions that change an image alike (``alike_groups`` of a directions record)."""
    members = sum(len(g) for g in groups)
    return (f", but {members} of the {K} fall into {len(groups)} group{'s' if len(groups) > 1 else ''} that change "
            f"the image alike (|cosine| >= {threshold}; the largest: directions {', '.join(map(str, groups[0]))}). "
            f"That leaves {effects} distinct effects: if a group's members could not be told apart at all, a "
            f"reconstructor could name at most {effects} of {K} directions, an RCA of {effects / K:.2f}.")


def _real_editing(r: dict) -> str:
    return (f"DDIM inversion with {r['invert_steps']} steps reconstructs held-out digits with mean absolute error "
            f"{r['recon_mean_abs_err']:.3f} (largest single pixel {r['recon_max_abs_err']:.2f}), so edits start "
            f"from the digit itself. On that chain s is scaled by {r['strength_scale']:.3g} so an edit has the size "
            "it had on the training chain.")


def _properties(r: dict) -> str:
    rows = r["rows"]
    worst = max(rows, key=lambda x: x["global_vs_sample"])
    return (f"Over {len(rows)} directions, editing with the mean shift differs from the per-sample edit by "
            f"{min(x['mean_vs_sample'] for x in rows):.2f}-{max(x['mean_vs_sample'] for x in rows):.2f} of the edit's "
            f"own size, and with one global shift by {min(x['global_vs_sample'] for x in rows):.2f}-"
            f"{max(x['global_vs_sample'] for x in rows):.2f} (direction {worst['k']} the most). The paper reports "
            "'almost the same effects'; a difference near 1 means the global direction does something else.")


def _rca_mos(r: dict) -> str:
    text = (f"RCA on {r['rca_n']:,} fresh pairs is {r['rca']:.3f} (chance {r['chance']:.3f}; the paper, at its own "
            f"settings: {r['paper_rca']}), with magnitude error {r['mag_err']:.2f}.")
    if r.get("s_min"):
        text += (f" Scored as the paper scores it, with s uniform in [-S, S] rather than |s| >= {r['s_min']:g}, it is "
                 f"{r['rca_uniform_s']:.3f}.")
    if "mos_proxy" in r:
        lo, hi = r["mos_proxy_interval"]
        rlo, rhi = r["mos_proxy_random_interval"]
        text += (f" The MOS proxy marks {_pct(r['mos_proxy'])} of the directions (95% interval {_pct(lo)}-{_pct(hi)}, "
                 f"{r['distinct_nameable']} distinct nameable effects) against {_pct(r['mos_proxy_random'])} of random "
                 f"directions at the same image change ({_pct(rlo)}-{_pct(rhi)}); the paper's MOS is "
                 f"{r['paper_mos']}.")
        if r.get("mos_proxy_kappa") is not None:
            text += f" Human marks agree with the proxy at Cohen's kappa {r['mos_proxy_kappa']:.2f}."
    if r.get("mos"):
        mos = r["mos"]
        return text + f" MOS from {len(mos['assessors'])} assessors: {mos['mos']:.2f} (paper {r['paper_mos']})."
    return text + (" No human marks were collected, so there is no MOS; the directions chapter's measured "
                   "interpretability is the complement this book offers, not a substitute.")


def _truth(r: dict) -> str:
    rows = {x["method"]: x for x in r["rows"]}
    rand = rows["random (scored)"]
    lo, hi = rand["interval"]["disentanglement"]
    text = (f"On {r['n_noises']} noises x 9 strengths per direction, every set at the same image change "
            f"({r['target_change']:.3f} at S/2), random directions score disentanglement {rand['disentanglement']:.2f} "
            f"({lo:.2f}-{hi:.2f}) and completeness {rand['completeness']:.2f}: the floor.")
    for name, x in rows.items():
        if name.startswith("random"):
            continue
        got = recovered(x)
        beyond = x["interval"]["disentanglement"][0] > hi
        text += (f" {name}: disentanglement {x['disentanglement']:.2f} ("
                 + ("above" if beyond else "not clearly above") + " random's interval), "
                 + (f"recovers {', '.join(got)}" if got else "recovers no factor") + ".")
    return text


def _fid(r: dict) -> str:
    row = r["rows"][0]
    ratio = row["shifted"] / row["raw"]
    return (f"{row['features']} to test digits rises from {row['raw']:.1f} (raw samples) to {row['shifted']:.1f} "
            f"(shifted, n={r['n']}, DDIM M={r['M']}): a ratio of {ratio:.2f}, where the paper's FID ratios lie "
            "between 0.96 and 1.06. "
            + ("Editing costs little realism here." if ratio <= 1.2
               else "Editing costs realism here: the shifted samples are visibly less like digits."))


def _compare(r: dict) -> str:
    rows = r["rows"]
    by_pass = max(rows, key=lambda x: x["interpretable_fraction"])
    by_rca = max(rows, key=lambda x: x["posthoc_rca"])
    rand = next((x for x in rows if x["method"] == "random"), None)
    text = (f"At one step size (|dh| = |s| x {r['rel']} x rms(h)), {by_pass['method']} has the most directions that "
            f"pass ({_pct(by_pass['interpretable_fraction'])}) and {by_rca['method']} the most recognisable ones "
            f"(post-hoc RCA {by_rca['posthoc_rca']:.2f}, chance {by_rca['posthoc_chance']:.2f}).")
    if rand:
        text += (f" Random directions, the floor, reach {_pct(rand['interpretable_fraction'])} and a post-hoc RCA of "
                 f"{rand['posthoc_rca']:.2f}: a method is only worth its cost where it beats them.")
        others = [x for x in rows if x is not rand]
        if others and rand["interpretable_fraction"] >= max(x["interpretable_fraction"] for x in others):
            text += (" Here none does on the first count: random directions pass at least as often as any method, "
                     "so at this step size passing does not single a method out")
            if "median_change_half" in rand:
                text += (f" (the test is easiest for edits that change little: random directions move the image by "
                         f"{rand['median_change_half']:.3f} at S/2, the median method by "
                         f"{sorted(x['median_change_half'] for x in others)[len(others) // 2]:.3f})")
            text += "."
        if all(x["posthoc_rca"] < 2 * x["posthoc_chance"] for x in rows):
            budget = r.get("posthoc")
            text += (" No method's edits are recognisable to a fresh reconstructor (post-hoc RCA below twice chance)"
                     + (f" trained on {budget['n_train']} pairs for {budget['epochs']} passes: too few to rank the "
                        "methods by it (a reconstructor needs thousands of pairs to read even the learned set: "
                        "`research/rca_ceiling.py`)" if budget else "") + ".")
    own = r.get("own_size")
    if own:
        learned = own["rows"][0]
        floor = next((x for x in own["rows"] if x["size"] == "equal |dh|"), None)
        equal = [x for x in own["rows"] if x["size"] == "equal change"]
        if floor:
            text += (f" At the learned model's own size ({own['rel']:g} x rms(h)), its directions pass "
                     f"{_pct(learned['interpretable_fraction'])} as trained, random directions of that size "
                     f"{_pct(floor['interpretable_fraction'])}")
            if learned["interpretable_fraction"] > floor["interpretable_fraction"]:
                text += ": there the learned set beats the floor."
            else:
                text += (f": there passing does not single the learned set out (random edits move the image by "
                         f"{floor['median_change_half']:.3f} at S/2, the learned ones by "
                         f"{learned['median_change_half']:.3f}: the test favours edits that change little).")
        if equal:
            rand = next((x for x in equal if x["method"] == "random"), None)
            free = sorted(x["interpretable_fraction"] for x in equal if x is not rand)
            change = sorted(x["median_change_half"] for x in equal)
            mine = learned["interpretable_fraction"]
            text += (f" At equal image change (every other method rescaled until its median edit at S/2 moves the "
                     f"image by {own['target_change']:.3f}, as the learned one does; realised "
                     f"{change[0]:.3f}-{change[-1]:.3f}), the learned set passes {_pct(mine)}")
            if free:
                text += (", the training-free methods " + (_pct(free[0]) if free[0] == free[-1]
                                                          else f"{_pct(free[0])}-{_pct(free[-1])}"))
            if rand:
                text += (f", random directions {_pct(rand['interpretable_fraction'])}"
                         + (f" (against {_pct(floor['interpretable_fraction'])} at equal |dh|)" if floor else "")
                         + (". Matched in visible change, the learned directions beat the random floor"
                            if mine > rand["interpretable_fraction"]
                            else ". Matched in visible change, the learned directions do not beat the random floor"))
            if free:
                text += (" and " if rand else ". The learned directions ") + (
                    "every training-free method" if mine > free[-1] and rand and mine > rand["interpretable_fraction"]
                    else "pass more often than every training-free method" if mine > free[-1]
                    else "pass about as often as the training-free methods" if mine >= free[0]
                    else "pass less often than the training-free methods")
            text += f" ({r['n_interp']} noises per direction: a few directions either way are within noise)."
        if "name_floor" in own:
            named = {x["method"]: x["named_beyond_random"] for x in equal if x["method"] != "random"}
            text += (f" Passing says an edit is safe, not that it has a name. Counting only the directions that pass "
                     f"and move a stroke measure more consistently than 95% of the random ones at equal change "
                     f"(|rho| > {own['name_floor']:.2f}): the learned set {_pct(learned['named_beyond_random'])}"
                     + "".join(f", {m} {_pct(v)}" for m, v in named.items()) + ".")
    return text


WRITERS: dict[str, Callable[[dict], str]] = {
    "train_dm": _train_dm, "train": _train, "benchmark": _benchmark, "directions": _directions, "truth": _truth,
    "real_editing": _real_editing, "properties": _properties, "rca_mos": _rca_mos, "fid": _fid, "compare": _compare,
}


def what_this_shows(chapter: str, record: dict) -> str:
    """The closing paragraph of ``chapter`` (a key of :data:`WRITERS`) from its record, as
    Markdown starting with "**What this shows.**"."""
    if chapter not in WRITERS:
        raise ValueError(f"no paragraph for chapter {chapter!r}: choose one of {', '.join(WRITERS)}")
    return "**What this shows.** " + WRITERS[chapter](record)
