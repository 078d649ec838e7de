"""Every chapter reads its parameters through one typed route (hdisc.chapter)."""

from pathlib import Path

import papermill
import pytest

from hdisc.chapter import BOUNDS, check_directions, defaults, typed, typed_parameters

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py")) + ["reproduction"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_chapter_types_its_parameters_first(chapter):
    folder = "book" if chapter == "reproduction" else "experiments"
    text = (ROOT / folder / f"{chapter}.py").read_text()
    after = text.split('# %% tags=["parameters"]\n', 1)[1].split("\n# %%", 2)[1]
    assert f'typed_parameters("{chapter}", globals())' in after  # the cell right after the parameters
    assert defaults(chapter)["preset"] in ("cpu", "smoke")


@pytest.mark.parametrize("value, default, want", [("false", True, False), ("TRUE", False, True), ("5", 1, 5),
                                                  (5, 0.5, 5.0), ("1e3", 0, 1000), ("[2, 4]", [], [2, 4]),
                                                  (3, "", "3"), ("x", "", "x"), (True, False, True)])
def test_values_are_read_as_their_defaults_type(value, default, want):
    got = typed("train", "p", value, default)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize("value, default", [("yes", True), (1, True), ("abc", 0), (2.5, 1), ("-", []), (True, 0),
                                            ("{}", [])])
def test_values_that_do_not_read_as_the_type_are_refused_by_name(value, default):
    with pytest.raises(ValueError, match=f"chapter train: parameter p={value!r} is not a .*nothing was run"):
        typed("train", "p", value, default)


def test_an_injected_parameter_the_chapter_does_not_take_is_refused():
    namespace = {**defaults("rca_mos"), "In": ["", "# Parameters\npreset = 'smoke'\nn_rcaa = 4\n"], "n_rcaa": 4}
    with pytest.raises(ValueError, match="chapter rca_mos: unknown parameter\\(s\\) n_rcaa; it takes dataset, preset"):
        typed_parameters("rca_mos", namespace)
    namespace["In"][-1] = "# Parameters\npreset = 'smoke'\nn_rca = '16'\n"
    namespace["n_rca"] = "16"
    assert typed_parameters("rca_mos", namespace)["n_rca"] == 16 and namespace["n_rca"] == 16


@pytest.mark.parametrize("chapter, name, value, named", [
    ("rca_mos", "n_rca", 0, r"n_rca=0 is out of range: valid \[1, 1e\+07\], fresh pairs"),
    ("rca_mos", "n_rca", -5, r"n_rca=-5 is out of range"),
    ("fid", "n", 2, r"n=2 is out of range: valid \[10, .*an FD from fewer means nothing"),
    ("directions", "n_rank", 0, r"n_rank=0 is out of range"),
    ("compare", "n_interp", 0, r"n_interp=0 is out of range: valid \[2, "),
    ("explore", "rel", float("nan"), r"rel=nan is out of range"),
    ("truth", "n", 1, r"n=1 is out of range: valid \[2, .*bootstrap"),
    ("train", "steps", -5, r"steps=-5 is out of range: valid -1 \(the preset's\) or a positive count"),
    ("properties", "ks", [1, -2], r"ks=\[1, -2\] holds \[-2\]: valid direction indices"),
    ("train", "seed", -1, r"seed=-1 is out of range: valid \[0, "),
])
def test_parameters_out_of_range_are_refused_before_the_chapter_runs(chapter, name, value, named):
    namespace = {**defaults(chapter), "In": ["", f"# Parameters\n{name} = {value!r}\n"], name: value}
    with pytest.raises(ValueError, match=f"chapter {chapter}: parameter {named}.*nothing was run"):
        typed_parameters(chapter, namespace)


def test_every_default_is_within_its_range_and_zero_means_skip_where_it_may():
    for chapter in CHAPTERS:
        typed_parameters(chapter, {**defaults(chapter), "In": []})  # no default is refused
    assert BOUNDS["n_interp"][0] == 0 and BOUNDS["n_eval"][0] == 0 and BOUNDS["n_sources"][0] == 0


def test_direction_indices_beyond_the_model_are_refused():
    check_directions("real_editing", [0, 3], 4)
    with pytest.raises(ValueError, match=r"ks=\[0, 99\] names \[99\], but the model has directions 0 to 3"):
        check_directions("real_editing", [0, 99], 4)


@pytest.mark.slow  # papermill
def test_a_render_asked_for_with_the_string_false_trains_nothing(tmp_path):
    """papermill's -p train false arrives as "false": read as False, a render (no checkpoint and no
    released model: refused)."""
    with pytest.raises(papermill.PapermillExecutionError, match="nothing to render in .* it holds neither"):
        papermill.execute_notebook(ROOT / "experiments" / "train.ipynb", tmp_path / "out.ipynb",
                                   parameters={"preset": "smoke", "out_dir": str(tmp_path / "run"), "train": "false"},
                                   progress_bar=False, kernel_name="python3")
    assert not (tmp_path / "run" / "directions.pt").exists()


@pytest.mark.slow  # papermill
def test_a_misspelt_parameter_stops_the_notebook_before_any_work(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter\\(s\\) n_rcaa"):
        papermill.execute_notebook(ROOT / "experiments" / "train_dm.ipynb", tmp_path / "out.ipynb",
                                   parameters={"preset": "smoke", "out_dir": str(tmp_path / "run"), "n_rcaa": 1},
                                   progress_bar=False, kernel_name="python3")
    assert not (tmp_path / "run").exists()
