"""The reproduction tables: paper beside ours, with the preset, from records only."""

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


def test_direction_similarity_is_reported_with_its_preset():
    rec = {"preset": "cpu", "mean_abs_similarity_all": 0.3, "mean_abs_similarity_top16": 0.5}
    table = reproduction_tables({"directions": rec})["Our DM, directions and real-image editing (no paper counterpart)"]
    assert "(all pairs; 1 = collapsed onto one effect, 0 = distinct) | 0.3 | `cpu` |" in table
    assert table.count("|") == 4 * len(table.splitlines())  # no stray pipes inside a cell
    assert "| the same among the 16 leading directions (ranked by change x realism) | 0.5 | `cpu` |" in table


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
