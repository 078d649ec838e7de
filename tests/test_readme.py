"""The README's headline table quotes the committed records, not numbers typed from memory."""

import json
import math

import pytest

from hdisc.files import project_path
from hdisc.interpret import named_beyond


def _readme_and_findings():
    """The README, the book's findings page (the research log) and its user guide (the reference
    that left the README): the numbers they quote."""
    return "\n".join(project_path(p).read_text() for p in ("README.md", "book/findings.md", "book/guide.md"))


def _record(name):
    return json.loads(project_path(f"results/mnist32-cpu/{name}").read_text())


def _removed(path):
    """What a checkpoint that left the tree held (research/removed_checkpoints.py)."""
    return next(f for f in _record("removed_checkpoints.json")["files"] if f["path"] == path)


def _headline_rows():
    text = _readme_and_findings()
    start = text.index("| mnist32, `cpu` preset, committed model")
    return text[start:text.index("\n\n", start)].splitlines()


def test_the_readme_headline_table_quotes_the_committed_records():
    rows = _headline_rows()
    rca = _record("rca_mos.json")
    interp = _record("directions.json")["interpretability"]["summary"]
    fd = _record("fid.json")["rows"][0]
    assert any(r.startswith(f"| RCA, {rca['rca_n']:,} fresh pairs") and f"| {rca['rca']:.3f} |" in r for r in rows)
    assert any(r.startswith("| RCA with s uniform in [-S, S]") and f"| {rca['rca_uniform_s']:.3f} | 0.77 |" in r
               for r in rows)
    assert any(r.startswith("| directions that pass") and f"| {len(interp['interpretable'])} of {interp['K']}"
               in r for r in rows)
    equal = _record("equal_change.json")
    by = {(r["method"], r["size"]): r for r in equal["rows"]}

    def named(method, size="equal change"):
        return round(by[(method, size)]["named_beyond_random"] * by[(method, size)]["K"])

    learned = by[("learned, as trained", "as trained (cap)")]
    assert any(r.startswith("| directions a person can name") and f"(\\|rho\\| > {equal['name_floor']:.2f};" in r
               and f"| {named('learned, as trained', 'as trained (cap)')} of 32 "
               f"({learned['named_beyond_random']:.0%}), all area+ (more ink); random directions {named('random')} of "
               f"32 ({by[('random', 'equal change')]['named_beyond_random']:.0%}), Jacobian "
               f"{named('Jacobian (one image)')} of 32, supervised {named('supervised')} of 16 |" in r for r in rows)
    beyond = named_beyond(learned, equal["name_floor"])
    assert {learned["attributes"][k] for k in beyond} == {"area+"}
    assert any(r.startswith("| FD-MnistNet") and f"| {fd['shifted']:.1f} / {fd['raw']:.1f} = "
               f"{fd['shifted'] / fd['raw']:.2f} |" in r for r in rows)


def test_the_readme_comparison_quotes_the_compare_record():
    text = " ".join(_readme_and_findings().split())
    record = _record("compare.json")
    own = record["own_size"]
    learned, floor = own["rows"][:2]
    equal = {r["method"]: r for r in own["rows"] if r["size"] == "equal change"}
    changes = sorted(r["median_change_half"] for r in equal.values())

    def pct(row):
        return f"{row['interpretable_fraction']:.0%}"

    def count(row):
        return f"{round(row['interpretable_fraction'] * row['K'])} of {row['K']}"

    assert (f"the learned directions as trained pass {pct(learned)} ({count(learned)}), random directions of that "
            f"size {pct(floor)}") in text
    assert f"moves the image by {own['target_change']:.3f}, as the learned set's does; realised " \
           f"{changes[0]:.3f}-{changes[-1]:.3f}" in text
    rand = equal["random"]
    assert (f"random directions fall to {pct(rand)} ({count(rand)}; only {rand['signed_fraction']:.0%} of them are "
            f"signed), while the learned set passes "
            f"{pct(learned)}, Jacobian {pct(equal['Jacobian (one image)'])}, PCA {pct(equal['PCA (pooled)'])} "
            f"and supervised {pct(equal['supervised'])}") in text


def test_the_readme_says_how_many_distinct_effects_the_directions_have():
    text = " ".join(_readme_and_findings().split())
    record = _record("directions.json")
    groups, K, effects = record["alike_groups"], record["K"], record["distinct_effects"]
    attributes = {row["k"]: row["attribute"] for row in record["interpretability"]["directions"]}
    assert (f"{sum(map(len, groups))} of the {K} fall into {len(groups)} groups that change an image alike "
            f"(|cosine| >= {record['alike_threshold']}") in text
    assert f"the largest, directions {', '.join(map(str, groups[0]))}, all named area+" in text
    assert {attributes[k] for k in groups[0]} == {"area+"}
    assert f"which leaves {effects} distinct effects" in text and f"{effects} / {K} = {effects / K:.2f}" in text


def test_the_readme_quotes_the_16_noise_equal_change_record():
    text = " ".join(_readme_and_findings().split())
    record = _record("equal_change.json")
    rows = {(r["method"], r["size"]): r for r in record["rows"]}
    learned, rand = rows[("learned, as trained", "as trained (cap)")], rows[("random", "equal change")]

    def pct(row):
        return f"{row['interpretable_fraction']:.0%}"

    assert record["n_interp"] == 16
    assert (f"random directions at equal change pass {pct(rand)} and the learned ones {pct(learned)}, the fewest of "
            "any method") in text
    assert f"median change at S/2 is {record['target_change']:.3f} there" in text
    pca, jac = rows[("PCA (pooled)", "equal change")], rows[("Jacobian (one image)", "equal change")]
    sup = rows[("supervised", "equal change")]
    assert (f"random directions pass {pct(rand)} ({round(rand['interpretable_fraction'] * 32)} of 32), PCA "
            f"{pct(pca)}, Jacobian {pct(jac)}, supervised {pct(sup)}, while the learned set as trained passes "
            f"{pct(learned)}") in text
    others = [r for r in record["rows"] if r["method"] != "learned, as trained"]
    assert all(r["interpretable_fraction"] > learned["interpretable_fraction"] for r in others)  # "the fewest"
    matched = [r for r in record["rows"] if r["size"] == "equal change"]
    assert all(r["target_reached"] for r in matched) and "reached the target within 5%" in text
    floor = record["name_floor"]
    assert f"(`hdisc.interpret.name_floor`: {floor:.2f}; their largest is {max(map(abs, rand['top_rho'])):.2f})" in text

    def named(row):
        return named_beyond(row, floor)

    assert (f"learned {len(named(learned))} of 32 ({', '.join(map(str, named(learned)))}, all area+: one effect, more "
            f"ink), random {len(named(rand))} (by construction about 5%), PCA {len(named(pca))}, Jacobian "
            f"{len(named(jac))} (slant, area, width), supervised {len(named(sup))} of 16 "
            f"({', '.join(sup['attributes'][k] for k in named(sup))})") in text
    assert {jac["attributes"][k][:-1] for k in named(jac)} == {"slant", "area", "width"}

    def clear(row):  # clear the floor, pass or not
        return [k for k in range(row["K"]) if abs(row["top_rho"][k]) > floor]

    strong = clear(learned)
    failing = [k for k in strong if k not in learned["interpretable"]]
    rho = sorted(abs(learned["top_rho"][k]) for k in strong)
    assert (f"({len(strong)} of 32 clear the floor, |rho| {rho[0]:.2f}-{rho[-1]:.2f}, against Jacobian's "
            f"{len(clear(jac))} and PCA's {len(clear(pca))}), but {len(failing)} of those {len(strong)} fail it"
            ) in text
    keep = _record("directions.json")["interpretability"]["directions"]  # the same noises (seed 1, 16)
    # the same evaluation; the two records ran at different thread counts (a rho may move in its 4th digit)
    assert [round(keep[k]["attribute_rho"], 4) for k in range(32)] == pytest.approx(learned["top_rho"], abs=1e-3)
    assert all(keep[k]["signed"] and keep[k]["smooth"] for k in failing)
    lo, hi = min(keep[k]["keep_half"] for k in failing), max(keep[k]["keep_half"] for k in failing)
    assert f"keep the digit in {lo:.0%}-{hi:.0%} of their edits at S/2".replace("%-", "-") in text
    names = [learned["attributes"][k] for k in strong]
    assert (f"area+ ({['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight'][names.count('area+') - 1]} "
            f"directions), area- (two) and thickness- (one)") in text and names.count("area-") == 2
    assert names.count("thickness-") == 1 and len(names) == 11
    assert f"in {record['wall_s']:,.0f} s at one thread, beside a probe" in text


def test_the_readme_quotes_the_jacobian_memory_record():
    text = " ".join(_readme_and_findings().split())
    row = next(r for r in _record("jacobian_memory.json")["rows"] if r["K"] == 32)
    assert f"{row['peak_rss_gb']:.1f} GB and {row['seconds']:.0f} s for K = 32 at {row['iters']} iterations" in text


def test_the_readme_quotes_the_effect_penalty_probes():
    text = " ".join(_readme_and_findings().split())
    probes = {p["name"]: p for p in _record("probes.json")["probes"]}
    rows = {"committed model (g3@1000)": ("g3-q2-cap0.1-b64@1000", "committed@1000-n48"),
            "d0": ("d0-committed-b16",) * 2, "d1": ("d1-committed-b16-div1",) * 2,
            "d2": ("d2-committed-b16-div10",) * 2,
            "d3: d2's directions, 1 joint step, then 99 of R and D alone at batch 64": ("d3-d2-freeze-R100",) * 2,
            "d4: d2 continued jointly to step 900": ("d4-d2-div10-long@900",) * 2,
            "e1: d2 in bfloat16 (`precision=auto` on this AMX CPU)": ("e1-committed-b16-div10-bf16@300",) * 2,
            "e2: e1 with the overlap per sign (`div_signs=\"apart\"`)": ("e2-committed-b16-div10signs-bf16@300",) * 2,
            "e3: e2 with the penalty in float32": ("e3-committed-b16-div10signs-f32penalty@300",) * 2,
            "e3 continued to step 900": ("e3-committed-b16-div10signs-f32penalty@900",) * 2,
            "e3 continued to step 2,000": ("e3-committed-b16-div10signs-f32penalty@2000",) * 2,
            "f1: e3 at step 1,000, 1 joint step, then 99 of R and D alone at batch 64":
                ("f1-e3at1000-freeze-R100@100",) * 2,
            "f2: e3 at step 1,000, 300 joint steps at weight 30": ("f2-e3at1000-div30@300",) * 2,
            "e3 (above, for comparison)": ("e3-committed-b16-div10signs-f32penalty@300",) * 2,
            "h1: the committed model, heads rescaled, e3's recipe": ("h1-committed-rescaled-b16-div10@300",) * 2,
            "i0: the committed model, spatial reader, 1 joint step, then 99 of R and D alone at batch 64":
                ("i0-committed-spatial-R100@100",) * 2,
            "i1: i0, then e3's recipe": ("i1-i0-spatial-b16-div10@300",) * 2,
            "k1: e3's recipe on the DM trained to 20,000 steps": ("k1-dm20k-committed-b16-div10@300",) * 2}
    for label, (scored, counted) in rows.items():
        p, effects = probes[scored], probes[counted]["effects"]
        i = p["interpretability"]
        assert (f"| {label} | {p['config']['lambda_div'] if 'lambda_div' in p['config'] else 0:g} | {p['rca']:.3f} | "
                f"{effects['distinct_effects']} ({effects['mean_abs_similarity']:.3f}) | "
                f"{i['interpretable_fraction']:.0%} | {i['signed_fraction']:.0%} | "
                f"{p['fidelity']['fd_ratio']:.2f} |") in text, label


def test_the_readme_quotes_the_effect_proxy_record():
    text = " ".join(_readme_and_findings().split())
    record = _record("effect_overlap.json")
    mean, corr = record["mean_over_nodes"], [n["corr_abs"] for n in record["nodes"]]
    assert (f"correlate {mean['corr_abs']:.2f} with those of the final edits over the {record['pairs']} pairs "
            f"(single nodes {min(corr):.2f}-{max(corr):.2f}), and the average links "
            f"{mean['pairs_linked_in_both']} of the {record['pairs_linked_final']} pairs") in text
    assert f"takes {record['median_seconds_per_call']:.1f} s on one thread" in text
    assert record["environment"]["threads"] == 1 and len(corr) == 6


def test_the_readme_quotes_the_effect_penalty_overlap_curves():
    text = " ".join(_readme_and_findings().split())
    probes = {p["name"]: p for p in _record("probes.json")["probes"]}
    d2, d1 = probes["d2-committed-b16-div10"]["overlap_curve"], probes["d1-committed-b16-div1"]["overlap_curve"]
    assert (f"{d2[0][1]:.3f} -> {d2[-1][1]:.3f} from its first to its last logged window; at weight 1, "
            f"{d1[0][1]:.3f} -> {d1[-1][1]:.3f}") in text
    assert f"d2 took {probes['d2-committed-b16-div10']['wall_s']:,.0f} s for 300" in text


def test_the_readme_quotes_the_long_effect_penalty_probe():
    text = " ".join(_readme_and_findings().split())
    probes = {p["name"]: p for p in _record("probes.json")["probes"]}
    d4, d2 = probes["d4-d2-div10-long@900"], probes["d2-committed-b16-div10"]
    equal = _record("equal_change.json")
    i = d4["interpretability"]
    beyond = named_beyond(i, equal["name_floor"])
    assert f"{d4['wall_s']:,.0f} s of training over two sessions" in text
    assert (f"The overlap fell further ({d2['overlap_curve'][-1][1]:.3f} -> {d4['overlap_curve'][-1][1]:.3f}), "
            f"{d4['effects']['distinct_effects']} distinct effects remain ({len(d4['effects']['alike_groups'])} pairs "
            f"alike), RCA rose to {d4['rca']:.3f} jointly (d2: {d2['rca']:.3f}; the committed model: "
            f"{probes['g3-q2-cap0.1-b64@1000']['rca']:.3f}) and the passing share recovered to "
            f"{i['interpretable_fraction']:.0%} (d2: {d2['interpretability']['interpretable_fraction']:.0%}), still "
            f"with fewer signed directions ({i['signed_fraction']:.0%})") in text
    assert all(len(g) == 2 for g in d4["effects"]["alike_groups"])
    assert (f"On its probe noises {len(beyond)} of the {len(i['interpretable'])} that pass also clear the name floor "
            f"of `equal_change.json` (|rho| > {equal['name_floor']:.2f}") in text
    names = {}
    for k in beyond:
        names.setdefault(i["attributes"][k], []).append(str(k))
    assert all(f"{a} ({', '.join(ks)})" in text for a, ks in names.items()) and len(names) == 4
    assert (f"RCA rose by {d4['rca'] - d2['rca']:.3f} and distinct effects by "
            f"{d4['effects']['distinct_effects'] - d2['effects']['distinct_effects']}") in text


def test_the_readme_quotes_the_bfloat16_penalty_probes():
    text = " ".join(_readme_and_findings().split())
    probes = {p["name"]: p for p in _record("probes.json")["probes"]}
    e1, e2, d2 = (probes[n] for n in ("e1-committed-b16-div10-bf16@300", "e2-committed-b16-div10signs-bf16@300",
                                      "d2-committed-b16-div10"))
    assert e1["config"]["div_signs"] == d2["config"]["div_signs"] == "averaged"
    assert e2["config"]["div_signs"] == "apart"
    assert "bfloat16" in e1["device"] and "bfloat16" in e2["device"] and "float32" in d2["device"]
    curve = {n: (p["overlap_curve"][0][1], p["overlap_curve"][-1][1]) for n, p in (("e1", e1), ("e2", e2), ("d2", d2))}
    assert (f"({curve['e1'][0]:.3f} -> {curve['e1'][1]:.3f} and {curve['e2'][0]:.3f} -> {curve['e2'][1]:.3f} in 300 "
            f"steps, where d2 in float32 went {curve['d2'][0]:.3f} -> {curve['d2'][1]:.3f})") in text
    assert e1["effects"]["alike_groups_by_sign"] == e1["effects"]["alike_groups"]
    assert f"{e1['effects']['distinct_effects_by_sign']} both ways" in text
    assert e1["effects"]["distinct_effects_by_sign"] == e1["effects"]["distinct_effects"]
    signed = [probes[n]["interpretability"]["signed_fraction"] for n in (
        "d0-committed-b16", "d1-committed-b16-div1", "d2-committed-b16-div10", "d4-d2-div10-long@900")]
    assert "(d0 {:.0%}, d1 {:.0%}, d2 {:.0%}, d4 {:.0%})".format(*signed) in text


def test_the_findings_quote_the_e3_checkpoint_from_its_record():
    text = " ".join(_readme_and_findings().split())
    blob = _removed("models/mnist32-cpu/probe-e3/discovery_checkpoint.pt")
    cfg = blob["discovery_config"]
    assert (cfg["lambda_div"], cfg["div_signs"], cfg["batch"]) == (10.0, "apart", 16)
    assert "bfloat16" in blob["trained_on"]
    assert blob["init_from"] == "models/mnist32-cpu/directions.pt"
    assert (f"{blob['first']['overlap']:.3f} -> {blob['last']['overlap']:.3f} over {blob['step']} steps "
            f"({blob['wall_s']:,.0f} s, one thread)") in text
    assert f"steps={blob['step']} checkpoint_every=100 lambda_div=10.0" in text
    probes = {p["name"]: p for p in _record("probes.json")["probes"]}
    e3, late, d2, d0, d4 = (probes[n] for n in (
        "e3-committed-b16-div10signs-f32penalty@300", "e3-committed-b16-div10signs-f32penalty@900",
        "d2-committed-b16-div10", "d0-committed-b16", "d4-d2-div10-long@900"))
    assert e3["config"]["div_signs"] == late["config"]["div_signs"] == "apart"
    final = probes["e3-committed-b16-div10signs-f32penalty@2000"]
    assert abs(final["wall_s"] - blob["wall_s"]) < 1 and final["steps"] == blob["step"]
    assert late["steps"] == d4["steps"]
    curve = e3["overlap_curve"]
    assert (f"{curve[0][1]:.3f} -> {curve[-1][1]:.3f} over its first 300 steps "
            f"({e3['wall_s']:,.0f} s, one thread)") in text
    i, j = e3["interpretability"], d2["interpretability"]
    assert (f"RCA {e3['rca']:.3f} (d2 {d2['rca']:.3f}), {e3['effects']['distinct_effects']} distinct effects "
            f"(d2 {d2['effects']['distinct_effects']}), {i['interpretable_fraction']:.0%} pass "
            f"(d2 {j['interpretable_fraction']:.0%};") in text
    assert (f"{i['signed_fraction']:.0%} signed (d2 {j['signed_fraction']:.0%}, "
            f"d0 {d0['interpretability']['signed_fraction']:.0%})") in text
    i, j = late["interpretability"], d4["interpretability"]
    assert late["effects"]["distinct_effects"] == d4["effects"]["distinct_effects"]
    assert (f"at the same RCA ({late['rca']:.3f} against d4's {d4['rca']:.3f}) and the same "
            f"{d4['effects']['distinct_effects']} distinct effects, e3 passes {i['interpretable_fraction']:.0%} "
            f"(d4 {j['interpretable_fraction']:.0%}) and keeps {i['signed_fraction']:.0%} signed "
            f"(d4 {j['signed_fraction']:.0%}), FD ratio {late['fidelity']['fd_ratio']:.2f}") in text
    assert f"(+{late['rca'] - e3['rca']:.3f} in 600 steps)" in text


def test_the_readme_quotes_the_rca_ceiling_record():
    text = " ".join(_readme_and_findings().split())
    record = _record("rca_ceiling.json")
    by = {(r["set"], r["reader"], r["n_train"]): r for r in record["rows"]}
    trained, refit = by[("learned", "as trained", 0)], by[("learned", "as trained, then refit", 16384)]
    fresh = [by[("learned", "fresh", n)]["rca"] for n in (4096, 16384)]
    rand = by[("random", "fresh", 16384)]
    assert f"(`{record['command']}`, `rca_ceiling.json`" in text
    assert (f"model's reconstructor reads {refit['rca']:.3f} ({trained['rca']:.3f} as trained); a fresh one climbs "
            f"from {fresh[0]:.3f} on 4,096 pairs to {fresh[1]:.3f} on 16,384") in text
    small, large = trained["rca_by_abs_s"][0], trained["rca_by_abs_s"][-1]
    assert f"(|s| 4-5) are told apart only {large['rca']:.0%}" in text and f"({small['rca']:.0%} at |s| 1-2)" in text
    assert round(large["abs_s"][0]) == 4 and round(small["abs_s"][1]) == 2
    assert f"({rand['rca']:.3f}, chance {rand['chance']:.3f})" in text
    equal = by[("random-equal-change", "fresh", 16384)]
    assert (f"size, where they change the image as much as the learned ones ({record['rel_equal_change']:.3f} x "
            f"rms(h), the size `equal_change.json` matched: {equal['rca']:.3f})") in text
    assert f"and so do they at {record['rel_equal_change'] / record['rel']:.1f} times that size" in text
    assert f"no gain ({refit['rca']:.3f} against {trained['rca']:.3f} as trained" in text
    assert f"took {record['wall_s']:,.0f} s of one thread" in text


def test_the_readme_precision_paragraph_quotes_each_machine_and_auto_follows_the_faster():
    from hdisc.precision import FAST_BF16_FLAG

    text = " ".join(_readme_and_findings().split())
    machines = _record("precision.json")["machines"]
    assert len({(m["cpu"], tuple(m["bf16_flags"])) for m in machines}) == len(machines)
    for m in machines:
        b16, b64 = (next(r for r in m["summary"] if r["batch"] == b) for b in (16, 64))
        faster = FAST_BF16_FLAG in m["bf16_flags"]
        assert (b16["speedup"] > 1 and b64["speedup"] > 1) == faster  # the flag tells the faster machines apart
        quoted = (f"{b16['bfloat16_step_s']:.1f} s against {b16['float32_step_s']:.1f} s",
                  f"{b64['bfloat16_step_s']:.1f} s against {b64['float32_step_s']:.1f} s")
        assert all(q in text for q in quoted)
        assert not faster or f"**{b16['speedup']:.2f}x faster**" in text
        assert m["chain_vs_vanilla_max_rel_grad_diff"] == {"float32": 0.0, "bfloat16": 0.0}


def test_the_readme_quotes_the_shift_window_record():
    text = " ".join(_readme_and_findings().split())
    record = _record("shift_window.json")
    cell = {(r["t_start"], r["s"]): r for r in record["rows"]}
    assert f"`shift_window.json`, {record['wall_s']:,.0f} s of one thread" in text
    assert record["n"] == 8 and [len(cell[(t, 5.0)]["shifted_t"]) for t in (999, 777, 555)] == [6, 4, 2]
    assert ("(at s = 10: {:.0%} all 6, {:.0%} last 4, {:.0%} last 2)".format(
        *(cell[(t, 10.0)]["keep"] for t in (999, 777, 555)))) in text
    two, two_far = cell[(555, 10.0)], cell[(555, 20.0)]
    assert (f"(last 2 at s = 10: {two['keep']:.0%} at mean change {two['change']:.3f} against "
            f"{two['keep_full_at_same_change']:.0%} for the whole window at that change; at s = 20: "
            f"{two_far['keep']:.0%} against {two_far['keep_full_at_same_change']:.0%})") in text


def test_the_readme_quotes_the_long_e3_run_and_the_probes_from_its_step_1000():
    text = " ".join(_readme_and_findings().split())
    probes = {p["name"]: p for p in _record("probes.json")["probes"]}
    late, final, f1, f2, d3, d2 = (probes[n] for n in (
        "e3-committed-b16-div10signs-f32penalty@900", "e3-committed-b16-div10signs-f32penalty@2000",
        "f1-e3at1000-freeze-R100@100", "f2-e3at1000-div30@300", "d3-d2-freeze-R100", "d2-committed-b16-div10"))
    i = final["interpretability"]
    assert (f"the passing share rose to {i['interpretable_fraction']:.0%} ({len(i['interpretable'])} of 32) at "
            f"{i['signed_fraction']:.0%} signed, {final['effects']['distinct_effects']} distinct effects and FD ratio "
            f"{final['fidelity']['fd_ratio']:.2f}") in text
    assert f"but RCA fell back to {final['rca']:.3f} ({late['rca']:.3f} at step 900;" in text
    assert (f"it keeps {i['interpretable_fraction']:.0%} of the directions passing at FD ratio "
            f"{final['fidelity']['fd_ratio']:.2f}, but RCA stays between {final['rca']:.2f} and "
            f"{late['rca']:.2f}") in text
    wide, committed = probes["e3-committed-b16-div10signs-f32penalty@2000-n48"], probes["committed@1000-n48"]
    j = wide["interpretability"]
    assert wide["n_eval"] == committed["n_eval"] == 48 and wide["rca"] == final["rca"]
    assert (f"(on 48 other noises, `...@2000-n48`, {len(j['interpretable'])} of 32 pass, "
            f"{j['interpretable_fraction']:.0%}, and {j['signed_fraction']:.0%} are signed, where the committed model "
            f"passes {len(committed['interpretability']['interpretable'])} of 32)") in text
    assert f"(d3's recipe, {f1['wall_s']:,.0f} s for the 100 steps)" in text
    assert f"steps, {final['wall_s'] - late['wall_s']:,.0f} s at one thread)" in text
    start = "models/mnist32-cpu/probe-e3/directions@1000.pt"
    assert f1["init_from"] == f2["init_from"] == start and _removed(start)["sha256"]
    assert (f1["config"]["freeze_shift_after"], f1["config"]["batch"], f2["config"]["lambda_div"]) == (1, 64, 30.0)
    assert (f"RCA {f1['rca']:.3f}, no gain, where d3 gained {d3['rca'] - d2['rca']:.3f} over d2") in text
    curve = f2["overlap_curve"]
    assert (f"its overlap fell ({curve[0][1]:.3f} -> {curve[-1][1]:.3f}) and distinct effects rose to "
            f"{f2['effects']['distinct_effects']}, but the edits shrank (median change at S/2 "
            f"{f2['interpretability']['median_change_half']:.3f} against {i['median_change_half']:.3f} for e3 at "
            f"step 2,000) and RCA fell to {f2['rca']:.3f}") in text


def test_the_readme_quotes_the_rescaled_heads_and_spatial_reader_probes():
    text = " ".join(_readme_and_findings().split())
    probes = {p["name"]: p for p in _record("probes.json")["probes"]}
    h1, i0, i1, e3, r2 = (probes[n] for n in (
        "h1-committed-rescaled-b16-div10@300", "i0-committed-spatial-R100@100", "i1-i0-spatial-b16-div10@300",
        "e3-committed-b16-div10signs-f32penalty@300", "r2-g3-freeze1000@1100"))
    assert h1["init_from"] == "runs/probe/h-start/rescaled.pt"
    assert i1["init_from"] == "runs/probe/i0-committed-spatial-R100/directions.pt"
    assert i0["config"]["reconstructor_head"] == i1["config"]["reconstructor_head"] == "spatial"
    assert (i0["config"]["freeze_shift_after"], i0["config"]["batch"]) == (1, 64)
    assert f"h1's 300 steps took {h1['wall_s']:,.0f} s and i1's {i1['wall_s']:,.0f} s at one thread" in text
    i = h1["interpretability"]
    assert (f"Turning heads (h1) give the most signed directions of any capped probe ({i['signed_fraction']:.0%}) and "
            f"{i['interpretable_fraction']:.0%} passing at FD ratio {h1['fidelity']['fd_ratio']:.2f}") in text
    assert i["signed_fraction"] >= max(p["interpretability"]["signed_fraction"] for p in probes.values()
                                       if p.get("interpretability", {}).get("signed_fraction") is not None
                                       and p.get("config", {}).get("shift_norm") == "cap")
    assert (f"(its training loss ends at {h1['ce_curve'][-1][1]:.2f} against e3's {e3['ce_curve'][-1][1]:.2f}) "
            f"and RCA ends at {h1['rca']:.3f}") in text
    assert f"(i0 {i0['rca']:.3f}, r2 {r2['rca']:.3f};" in text and f"ends at {i1['rca']:.3f}" in text


def test_the_readme_quotes_the_h_spectrum_record():
    text = " ".join(_readme_and_findings().split())
    record = _record("h_spectrum.json")
    committed, longer = record["rows"]
    assert (committed["dm"], committed["trained_steps"]) == ("models/mnist32-cpu/dm_ema.pt", 12000)
    assert (longer["dm"], longer["trained_steps"]) == ("models/mnist32-cpu/dm-long/dm_ema.pt", 20000)
    assert f"`{record['command']}`, `h_spectrum.json`, {committed['wall_s']:.0f} s a DM" in text
    s1 = committed["sigma_1"]
    assert f"is {s1[4] / s1[0]:.0f} and {s1[5] / s1[0]:.0f} times that of t = 999" in text
    a, b = committed["answered_0.25"], longer["answered_0.25"]
    assert f"answers only {a[4]:g} and {a[5]:g} directions within a quarter of the largest ({a[3]:g} at t = 666" in text
    assert s1[2] / s1[5] <= 1 / 16 and "at most a sixteenth of t = 444's" in text
    assert f"({b[3]:g}, {b[4]:g} and {b[5]:g} at t = 666, 555 and 444 against {a[3]:g}, {a[4]:g} and {a[5]:g})" in text
    wall = _removed("models/mnist32-cpu/dm-long/dm_checkpoint.pt")["wall_s"]
    before = json.loads(project_path("models/mnist32-cpu/train_dm.json").read_text())["wall_s"]
    assert f"(`models/mnist32-cpu/dm-long/`, {(wall - before) / 60:.0f} more minutes of one core)" in text
    fd = [r["quality"]["samples"]["fd_mnistnet"] for r in (longer, committed)]
    assert f"(FD-MnistNet {fd[0]:.1f} against {fd[1]:.1f} for the committed DM, " in text
    learned = record["learned"]
    rho = learned["spearman"]
    assert (f"(rank correlation {rho[4]:.2f} at t = 555 and {rho[5]:.2f} at t = 444; "
            f"{min(rho[:3]):.2f}-{max(rho[:3]):.2f} at the first three nodes)") in text
    order = sorted(range(32), key=lambda k: learned["change"][k])
    weak = [learned["share"][k][4] for k in order[:9]]
    strong = [learned["share"][k][4] for k in order[-5:]]
    assert f"put {min(weak):.2%}-{max(weak):.2%} there at t = 555".replace("%-", "-") in text
    assert f"({learned['r']} / 4,096 = {learned['random_share']:.2%})" in text
    assert f"the five that move it most, {min(strong):.1%}-{max(strong):.0%}".replace("%-", "-") in text


def test_the_readme_quotes_the_probe_on_the_longer_trained_dm():
    text = " ".join(_readme_and_findings().split())
    probes = {p["name"]: p for p in _record("probes.json")["probes"]}
    k1, e3 = probes["k1-dm20k-committed-b16-div10@300"], probes["e3-committed-b16-div10signs-f32penalty@300"]
    assert k1["dm"]["path"] == "models/mnist32-cpu/dm-long/dm_ema.pt" and k1["init_from"] == e3["init_from"]
    recipe = ("M", "batch", "lr", "lr_shift", "shift_rms", "s_min", "lambda_div", "div_signs", "lambda_adv")
    assert all(k1["config"][key] == e3["config"][key] for key in recipe)
    passing = k1["interpretability"]["interpretable_fraction"]
    assert passing == max(p["interpretability"]["interpretable_fraction"] for p in probes.values()
                          if p.get("steps") == 300 and p.get("n_eval") == 16)
    e3_passing, loss = e3["interpretability"]["interpretable_fraction"], (k1["ce_curve"][-1][1], e3["ce_curve"][-1][1])
    assert (f"keep more directions passing ({passing:.0%} against {e3_passing:.0%}, "
            f"the most of any 300-step probe scored on 16 noises) and more distinct effects "
            f"({k1['effects']['distinct_effects']}), but RCA falls to {k1['rca']:.3f} (training loss "
            f"{loss[0]:.2f} against e3's {loss[1]:.2f}; {k1['wall_s']:,.0f} s at one thread)") in text


def test_the_readme_stage_table_quotes_the_step_speed_and_benchmark_records():
    text = " ".join(_readme_and_findings().split())
    speed = _record("step_speed.json")
    rows = {(r["precision"], r["method"]): r for r in speed["discovery"]["rows"]}
    flat, budget, bf16 = rows[("float32", "chain")], rows[("float32", "budget")], rows[("bfloat16", "chain")]
    assert (f"{flat['step_s']:.1f} s a step in float32 with the paper's flat-memory chain, {budget['step_s']:.1f} s "
            f"with the memory-budgeted chain (`budget=\"auto\"`, {budget['peak_mb'] / 1000:.1f} GB peak: "
            f"{budget['speedup']:.2f}x), {bf16['step_s']:.1f} s in bfloat16 autocast ({bf16['speedup']:.2f}x") in text
    dm = {(r["dataset"], r["precision"], r["compile"], r["channels_last"]): r for r in speed["dm"]}
    assert (f"{dm[('mnist32', 'float32', False, False)]['step_s']:.2f} s in float32 and "
            f"{dm[('mnist32', 'bfloat16', False, False)]['step_s']:.2f} s in bfloat16 autocast here") in text
    bench = _record("benchmark.json")
    assert (f"the budgeted chain costs {bench['budget_all_vs_vanilla']:.2f}x vanilla at M = "
            f"{bench['budget_all_vs_vanilla_M']}; given half, {bench['budget_half_vs_chain']:.2f}x the flat chain at "
            f"{bench['budget_half_peak_mb'] / 1000:.1f} GB") in text
    assert bench["grad_max_rel_diff"] == 0.0 and bench["budget_all_vs_vanilla"] <= 1.05
    assert bench["budget_half_peak_mb"] <= bench["budget_half_limit_mb"]


def test_the_readme_quotes_the_factor_readers_record():
    text = " ".join(_readme_and_findings().split())
    record = json.loads(project_path("results/shapes32-cpu/factor_readers.json").read_text())
    floor = math.floor(min(record["r2"].values()) * 1000) / 1000  # "R^2 >= x": x rounded down
    assert f"on {record['n']:,} held-out images R^2 >= {floor:.3f}" in text
    assert f"and {record['shape_accuracy']:.3f} shape accuracy" in text
    assert min(record["r2"].values()) >= 0.95 and record["shape_accuracy"] >= 0.98


def test_the_readme_headline_quotes_the_mos_proxy_record():
    row = next(r for r in _headline_rows() if r.startswith("| MOS proxy"))
    record = _record("mos_proxy.json")
    by = {r["method"]: r for r in record["rows"]}
    learned, rand = by["learned, as trained"], by["random"]
    lo, hi = learned["interval"]
    assert (f"| {len(learned['passing'])} of {learned['K']} ({learned['mos_proxy']:.0%}; 95% interval over the noises "
            f"{lo:.0%}-{hi:.0%}), {learned['distinct_nameable']} distinct nameable effects; random directions at equal "
            f"change {rand['mos_proxy']:.0%} (out of sample), PCA {by['PCA (pooled)']['mos_proxy']:.0%}, Jacobian "
            f"{by['Jacobian (one image)']['mos_proxy']:.0%}, supervised {by['supervised']['mos_proxy']:.0%} |") in row
    assert rand["mos_proxy"] <= 0.10 and by["random (calibration)"]["mos_proxy"] <= 0.10
    text = " ".join(_readme_and_findings().split())
    others = max(by[m]["mos_proxy"] for m in ("PCA (pooled)", "Jacobian (one image)", "supervised"))
    assert (f"(the set they were set on: {by['random (calibration)']['mos_proxy']:.0%}; a second random set, out of "
            f"sample: {rand['mos_proxy']:.0%}), the learned directions are the only family well above the floor: "
            f"{len(learned['passing'])} of 32 pass, against at most {others:.0%}") in text
    assert f"make only {learned['distinct_nameable']} distinct effects" in text


def test_the_readme_quotes_the_high_t_records():
    text = " ".join(_readme_and_findings().split())
    shapes = json.loads(project_path("results/shapes32-cpu/high_t.json").read_text())["entries"]
    first, last = (e["rows"][0] for e in shapes)
    mnist = _record("high_t.json")["entries"][0]["rows"][0]
    assert first["t"] == last["t"] == mnist["t"] == 999
    assert (f"predicts the noise at t = 999 with {last['eps_mse'] / mnist['eps_mse']:.0f}x the MNIST DM's error "
            f"({last['eps_mse']:.5f} against {mnist['eps_mse']:.5f}; {first['eps_mse']:.5f} at step 7,500 in "
            "bfloat16)") in text


def test_the_readme_api_recipe_runs_as_written(tmp_path):
    import re
    import subprocess
    import sys

    text = project_path("README.md").read_text()
    code = re.search(r"\*\*The API in ten lines\.\*\*.*?```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True)
    from PIL import Image

    assert Image.open(tmp_path / "direction4.png").size == ((5 * 34 + 2) * 3, (4 * 34 + 2) * 3)  # 4 x 5 edits


def test_the_findings_quote_the_free_magnitude_probe():
    text = " ".join(_readme_and_findings().split())
    p1 = {p["name"]: p for p in _record("probes.json")["probes"]}["p1-free-adv1-hinge-r1@300"]
    c, i, e = p1["config"], p1["interpretability"], p1["effects"]
    assert (c["shift_norm"], c["lambda_adv"], c["adv_loss"], c["r1_gamma"], c["head_init_std"]) == (
        "free", 1.0, "hinge", 1.0, 0.0) and p1["init_from"] is None
    assert f"from zero heads, {p1['wall_s']:,.0f} s at one thread" in text
    assert f"(median change at S/2 {i['median_change_half']:.3f}) at FD ratio {p1['fidelity']['fd_ratio']:.2f}" in text
    biggest = max(map(len, e["alike_groups"]))
    assert f"{biggest} of them fall into one group of alike changes ({e['distinct_effects']} distinct effects)" in text
    assert f"{i['attributes'].count('area-')} named area-" in text
    assert f"RCA stays at {p1['rca']:.3f} (chance 0.031; training loss {p1['ce_curve'][-1][1]:.2f} at step 300" in text


def test_the_findings_quote_the_released_shapes_dm():
    text = " ".join(_readme_and_findings().split())
    released = json.loads(project_path("models/shapes32-cpu/train_dm.json").read_text())
    first = json.loads(project_path("results/shapes32-cpu/train_dm_unreleased.json").read_text())["quality"]["samples"]
    high_t = {e["file"]: e for e in json.loads(project_path("results/shapes32-cpu/high_t_schedules.json").read_text())[
        "entries"]}
    assert released["config"]["dm"]["schedule"] == {"T": 1000, "kind": "scaled_linear", "beta_start": 0.00085,
                                                    "beta_end": 0.012, "prediction": "v"}
    assert released["steps"] == 8000
    err = {f: e["rows"][0]["x0_mean_colour_err"] for f, e in high_t.items()}
    assert all(e["rows"][0]["t"] == 999 for e in high_t.values())
    assert f"at step 4,500 its predicted x_0's mean colour at t = 999 was off by {err['runs/shapes32-cpu-sl/dm_checkpoint.pt']:.3f} (the first DM's at step 12,000: {err['runs/shapes32-cpu/dm_checkpoint.pt']:.3f})" in text  # noqa: E501
    assert f"took {released['wall_s']:,.0f} s; its EMA's mean-colour error at t = 999 is {err['runs/shapes32-cpu-v/dm_ema.pt']:.3f}" in text  # noqa: E501
    q, real = released["quality"]["samples"], released["quality"]["real"]
    assert (f"FD-ShapeNet {q['fd_shapenet']:.1f}, against {first['fd_shapenet']:,.0f} for the first DM and "
            f"{real['fd_shapenet']:.2f} between held-out halves; the shape reader is {q['mean_confidence']:.3f} "
            f"confident (real images {real['mean_confidence']:.3f})") in text
    fd, old = q["factor_distance"], first["factor_distance"]
    assert (f"frequencies {min(q['shape_freq']):.2f}-{max(q['shape_freq']):.2f}, total variation {q['shape_tv']:.3f}"
            in text and min(q["shape_freq"]) > 0)
    assert (f"{fd['scale']:.2f} from the data's for scale, {fd['background']:.2f} for background and {fd['hue']:.2f} "
            f"for hue (the first DM: {old['scale']:.2f}, {old['background']:.2f}, {old['hue']:.2f})") in text
