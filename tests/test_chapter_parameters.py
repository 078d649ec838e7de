"""Every chapter reads its parameters through one typed route (hdisc.chapter)."""

from pathlib import Path

import papermill
import pytest

from hdisc.chapter import defaults, typed, typed_parameters

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
