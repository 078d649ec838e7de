"""The reproduction tables: paper beside ours, with the preset, from records only."""

import json

from hdisc.report import benchmark_table, load_records, markdown_table, reproduction_tables


def test_without_records_ours_is_not_run_and_mos_none_collected():
    tables = reproduction_tables({})
    t1 = tables["Table 1: RCA and MOS"]
    assert "| RCA | 0.77 | not run |" in t1 and "| MOS | 0.52 | none collected |" in t1
    t2 = tables["Table 2: fidelity of shifted samples (raw vs shifted)"]
    assert "anime64 (paper, FID) | 8.96 | 9.21 | `paper`" in t2


def test_ours_carries_its_preset(tmp_path):
    (tmp_path / "rca_mos.json").write_text('{"preset": "cpu", "rca": 0.5, "mos": {"mos": 0.25, "assessors": ["a"]}}')
    (tmp_path / "train.json").write_text('{"preset": "cpu", "rca": 0.4, "K": 32, "M": 5, "batch": 16, "steps": 9, '
                                         '"steps_budget": 12}')
    t1 = reproduction_tables(load_records(tmp_path))["Table 1: RCA and MOS"]
    assert "| RCA | 0.77 | 0.5 | `cpu` | K=32, M=5, batch 16, 9 steps (of the preset's 12); chance 0.031 |" in t1
    assert "| MOS | 0.52 | 0.25 | `cpu` | 1 assessors |" in t1


def test_markdown_table_shape():
    assert markdown_table(["a", "b"], [[1, 0.12345]]).splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.123 |"]
    assert markdown_table(["|dh|", "b"], [["equal |dh|", 2]]).splitlines()[::2] == [r"| \|dh\| | b |",
                                                                               r"| equal \|dh\| | 2 |"]


def test_direction_similarity_is_reported_with_its_preset():
    rec = {"preset": "cpu", "mean_abs_similarity_all": 0.3, "mean_abs_similarity_top16": 0.5}
    table = reproduction_tables({"directions": rec})["Our DM, directions and real-image editing (no paper counterpart)"]
    assert "(all pairs; 1 = collapsed onto one effect, 0 = distinct) | 0.3 | `cpu` |" in table
    assert table.count("|") == 4 * len(table.splitlines())  # no stray pipes inside a cell
    assert "| the same among the 16 leading directions (ranked by change x realism) | 0.5 | `cpu` |" in table
    rec |= {"K": 32, "alike_threshold": 0.7, "alike_groups": [[4, 6, 15, 26, 30], [11, 13]],
            "distinct_effects": 27}
    table = reproduction_tables({"directions": rec})["Our DM, directions and real-image editing (no paper counterpart)"]
    assert "told apart | 7 of 32 in 2 groups; 27 effects, RCA <= 0.84 | `cpu` |" in table


def test_a_gpu_benchmark_names_its_device_and_what_did_not_fit():
    row = {"peak_mb": 4858.0, "img_per_s": 382.0}
    bench = {"Ms": [5, 20], "batch": 128, "device": "cuda", "preset": "paper", "step_time_ratio": 1.07,
             "step_time_ratio_M": 5, "grad_max_rel_diff": 0.0, "environment": {"cuda": "NVIDIA H100 80GB HBM3"},
             "rows": [{"method": "chain", "M": 5, **row}, {"method": "vanilla", "M": 5, **row},
                      {"method": "chain", "M": 20, **row}],
             "skipped": [{"method": "vanilla", "M": 20, "predicted_mb": 72101.9}]}
    title, table = benchmark_table(bench)
    assert "batch 128, NVIDIA H100 80GB HBM3, preset `paper`" in title
    assert "| 20 | skipped: 72102 predicted | 4858 |" in table


def test_the_equal_change_comparison_is_a_table_of_its_own(tmp_path):
    row = {"posthoc_rca": 0.03, "posthoc_chance": 0.031, "K": 32, "named_fraction": 0.9, "fd_ratio": 1.0,
           "interpretable_fraction": 0.25, "signed_fraction": 1.0, "median_keep_half": 0.75,
           "median_change_half": 0.03, "disentanglement": 0.085, "named_beyond_random": 0.0}
    record = {"preset": "cpu", "rel": 0.5, "rows": [row | {"method": "random"}], "own_size": {
        "rel": 0.1, "target_change": 0.028, "name_floor": 0.6234, "rows": [
            row | {"method": "learned, as trained", "size": "as trained (cap)", "rel": 0.1},
            row | {"method": "random", "size": "equal |dh|", "rel": 0.1, "interpretable_fraction": 0.69,
                   "interpretable_interval": [0.5, 0.8125], "named_beyond_random": 0.125},
            row | {"method": "random", "size": "equal change", "rel": 0.311, "interpretable_fraction": 0.06,
                   "matched_change": 0.0281, "target_reached": True},
            row | {"method": "supervised", "size": "equal change", "rel": 0.01, "matched_change": 0.008,
                   "target_reached": False}]}}
    (tmp_path / "compare.json").write_text(json.dumps(record))
    tables = reproduction_tables(load_records(tmp_path))
    title = next(t for t in tables if "at equal image change" in t)
    assert "preset `cpu`" in title and "the learned set's, 0.028)" in title
    lines = tables[title].splitlines()
    assert "| pass and named beyond random (abs rho > 0.62) |" in lines[0]
    assert lines[3] == r"| random | equal \|dh\| | 0.1 | 69% | 50%-81% | 12% | 100% | 75% | 0.03 | 0.03 (0.03) | 1 |"
    assert lines[4] == "| random | equal change | 0.311 | 6% |  | 0% | 100% | 75% | 0.03 | 0.03 (0.03) | 1 |"
    assert lines[5].startswith("| supervised | equal change (missed: 0.008) | 0.01 | 25% |")  # short of 0.028
    del record["own_size"]["name_floor"]  # a record from before the null of a name: no such column
    (tmp_path / "compare.json").write_text(json.dumps(record))
    lines = reproduction_tables(load_records(tmp_path))[title].splitlines()
    assert "named beyond random" not in lines[0]
    assert lines[4] == "| random | equal change | 0.311 | 6% |  | 100% | 75% | 0.03 | 0.03 (0.03) | 1 |"
    same = next(t for t in tables if "on one yardstick" in t)  # the chapter's table, built by the same function
    assert tables[same].splitlines()[2] == "| random | 32 | 25% | 75% | 0.03 | 90% | 0.085 | 0.03 (0.03) | 1 |"


def test_the_rca_ceiling_is_a_table_of_its_own_with_each_reader(tmp_path):
    def row(reader, n, rca, small, large):
        return {"set": "learned" if reader != "random" else "random", "reader": reader.replace("random", "fresh"),
                "n_train": n, "epochs": 8 if n else 0, "rca": rca, "chance": 0.03125, "mag_err": 1.25, "n_test": 2048,
                "rca_by_abs_s": [{"abs_s": [1.0, 2.0], "rca": small, "n": 512},
                                 {"abs_s": [4.0, 5.0], "rca": large, "n": 512}]}

    record = {"preset": "cpu", "S": 5, "s_min": 1.0, "rel": 0.1, "n_test": 2048,
              "command": "python research/rca_ceiling.py epochs=8",
              "rows": [row("as trained", 0, 0.488, 0.2, 0.7), row("fresh", 16384, 0.5, 0.21, 0.72),
                       row("random", 16384, 0.1, 0.05, 0.15)]}
    (tmp_path / "rca_ceiling.json").write_text(json.dumps(record))
    tables = reproduction_tables(load_records(tmp_path))
    title = next(t for t in tables if "How far a reconstructor" in t)
    assert "paper: RCA 0.77" in title and "preset `cpu`" in title and "1 <= |s| <= 5" in title
    assert "`python research/rca_ceiling.py epochs=8`" in title
    lines = tables[title].splitlines()
    assert lines[0].endswith(r"| mean \|s_hat - s\| |")
    assert lines[2] == (r"| learned | as trained | none beyond joint training | 0.488 (0.031) | 0.20 (\|s\| 1.0-2.0) "
                        r"| 0.70 (\|s\| 4.0-5.0) | 1.25 |")
    assert lines[4].startswith("| random | fresh | 16,384 (8) | 0.100 (0.031) |")
    assert "same image change" not in title  # a record without that set
    (tmp_path / "rca_ceiling.json").write_text(json.dumps(record | {"rel_equal_change": 0.248259}))
    title = next(t for t in reproduction_tables(load_records(tmp_path)) if "How far a reconstructor" in t)
    assert "of the same |dh| (0.1 x rms(h)) and of the same image change (0.248 x rms(h), `equal_change.json`)" in title


def test_the_h_spectrum_is_a_table_of_each_dm_by_node(tmp_path):
    def row(dm, steps, fd, counts):
        return {"dm": dm, "trained_steps": steps, "nodes_t": [999, 444], "answered_0.25": counts,
                "quality": {"samples": {"fd_mnistnet": fd}, "real": {"fd_mnistnet": 5.59}}}

    record = {"preset": "cpu", "M": 10, "k": 64, "n": 4, "command": "python research/h_spectrum.py",
              "rows": [row("models/mnist32-cpu/dm_ema.pt", 12000, 36.93, [19.75, 8.0]),
                       row("elsewhere/dm_ema.pt", None, 30.0, [20.0, 9.5])],
              "learned": {"r": 10, "spearman": [0.5, 0.93]}}
    (tmp_path / "h_spectrum.json").write_text(json.dumps(record))
    tables = reproduction_tables(load_records(tmp_path))
    title = next(t for t in tables if "How many directions of h the DM answers" in t)
    assert "preset `cpu`" in title and "M=10" in title and "top 64 on 4 noises" in title
    assert "share of |dh| in the top 10 at rho 0.50, 0.93 by node" in title
    assert "`python research/h_spectrum.py`" in title
    lines = tables[title].splitlines()
    assert lines[0] == "| DM | training steps | FD-MnistNet of DDIM samples (test halves) | t = 999 | t = 444 |"
    assert lines[2] == "| `models/mnist32-cpu/dm_ema.pt` | 12,000 | 36.9 (5.6) | 19.75 | 8 |"
    assert lines[3] == "| `elsewhere/dm_ema.pt` |  | 30.0 (5.6) | 20 | 9.5 |"
    del record["learned"]
    (tmp_path / "h_spectrum.json").write_text(json.dumps(record))
    assert not any("rank" in t for t in reproduction_tables(load_records(tmp_path)) if "directions of h" in t)


def test_the_mos_proxy_joins_table_1_and_has_a_table_of_its_own():
    row = {"rel": None, "mos_proxy": 0.25, "interval": [0.1, 0.4], "distinct_nameable": 3, "consistency": [0.5, 0.7],
           "agreement": [0.9, 1.0], "realism": [0.95, 1.0], "name_rho": [0.8, 0.2]}
    proxy = {"preset": "cpu", "n_noises": 32, "svals": [0.0] * 9, "command": "python research/mos_proxy.py",
             "rows": [{"method": "learned, as trained", **row}, {"method": "random", **row, "rel": 0.248,
                                                                  "mos_proxy": 0.0, "interval": [0.0, 0.0]}]}
    rca_mos = {"preset": "cpu", "rca": 0.5, "rca_n": 1024, "rca_uniform_s": 0.42, "s_min": 1.0, "mos": None,
               "mos_proxy": 0.25, "mos_proxy_interval": [0.1, 0.4], "mos_proxy_noises": 32, "distinct_nameable": 3,
               "mos_proxy_random": 0.0}
    tables = reproduction_tables({"rca_mos": rca_mos, "mos_proxy": proxy})
    table1 = tables["Table 1: RCA and MOS"]
    assert "| RCA with s uniform in [-S, S] (the paper's form) | 0.77 | 0.42 | `cpu` |" in table1
    assert "| 0.52 | 0.25 | `cpu` | 95% interval 0.10-0.40 over 32 noises; 3 distinct nameable effects" in table1
    own = next(t for title, t in tables.items() if title.startswith("The MOS proxy on every family"))
    assert "| learned, as trained | as trained | 0.25 | 0.10-0.40 | 3 | 0.6 |" in own
    assert "| random | 0.248 | 0 | 0.00-0.00 |" in own
