"""A chapter's parameters, read once through one typed route before the chapter does anything.

papermill hands ``-p train false`` to a notebook as the string ``"false"`` (truthy), and only
warns about a parameter the notebook does not declare. :func:`typed_parameters` reads the
chapter's own parameters cell (its defaults, from the jupytext source ``experiments/NAME.py``
or ``book/NAME.py``), refuses any injected parameter that is not among them, and reads every
value as its default's type (:func:`hdisc.presets.read_as`: booleans from true/false, ints as
whole numbers, lists from JSON), raising a ValueError that names the parameter, what it got
and what it takes.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

from .files import project_path
from .presets import read_as

INJECTED = "# Parameters"
"""The first line of the cell papermill injects (its ``comment``)."""


def chapter_source(chapter: str) -> Path:
    """The jupytext source of ``chapter``: ``experiments/NAME.py`` or ``book/NAME.py``."""
    for folder in ("experiments", "book"):
        path = project_path(f"{folder}/{chapter}.py")
        if path.is_file():
            return path
    raise FileNotFoundError(f"no chapter named {chapter!r} in experiments/ or book/")


def defaults(chapter: str) -> dict[str, object]:
    """The parameters a chapter declares, with their default values, from its parameters cell."""
    text = chapter_source(chapter).read_text()
    cell = text.split('# %% tags=["parameters"]\n', 1)[1].split("\n# %%", 1)[0]
    return {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell).body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def injected(namespace: dict) -> list[str]:
    """The names papermill assigned in the cell it injected (found in IPython's ``In``)."""
    cells = [c for c in namespace.get("In", []) if isinstance(c, str) and c.startswith(INJECTED)]
    if not cells:
        return []
    return [node.targets[0].id for node in ast.parse(cells[-1]).body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)]


def typed(chapter: str, name: str, value: object, default: object) -> object:
    """``value`` of parameter ``name`` read as ``default``'s type, or a ValueError."""
    def refuse() -> ValueError:
        kind = type(default).__name__
        return ValueError(f"chapter {chapter}: parameter {name}={value!r} is not a {kind} (its default is "
                          f"{default!r}): pass a {kind}" + (" (true or false)" if isinstance(default, bool) else "")
                          + "; nothing was run")

    if default is None or (type(value) is type(default) and not isinstance(value, list | tuple)):
        return value
    if isinstance(default, list | tuple):
        parsed = value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                raise refuse() from None
        if not isinstance(parsed, list | tuple):
            raise refuse()
        return list(parsed)
    if isinstance(default, str):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise refuse()
        return str(value)
    if isinstance(value, bool) and not isinstance(default, bool):
        raise refuse()
    if isinstance(default, bool) and not isinstance(value, str):
        raise refuse()
    if isinstance(default, int | float) and not isinstance(default, bool) and isinstance(value, int | float):
        if isinstance(default, int) and not float(value).is_integer():
            raise refuse()
        return type(default)(value)
    try:
        return read_as(type(default), str(value))
    except ValueError:
        raise refuse() from None


BIG = 10**7
BOUNDS: dict[str, tuple[float, float, str]] = {
    "seed": (0, 2**63 - 1, "a seed in [0, 2**63)"),
    "n_rank": (1, 4096, "noises the directions are ranked on, e.g. 16"),
    "n_real": (1, 10_000, "real images to edit, e.g. 8"),
    "n_examples": (1, 64, "examples per direction in a figure, e.g. 4"),
    "n_show": (1, 4096, "directions shown, e.g. 8"),
    "n_dirs": (1, 4096, "directions to edit with, e.g. 4"),
    "n_rca": (1, BIG, "fresh pairs the RCA is measured on, e.g. 1000"),
    "n_interp": (0, 100_000, "noises per direction (0: skip the evaluation), e.g. 16"),
    "n_mean": (1, 100_000, "samples averaged into the mean direction, e.g. 32"),
    "invert_steps": (1, 100_000, "DDIM steps of the inversion, e.g. 100 (at most the DM's T)"),
    "n_pca": (2, BIG, "samples for PCA and the supervised directions, e.g. 1000"),
    "jacobian_iters": (1, 1000, "subspace iterations, e.g. 10"),
    "n_train": (1, BIG, "training edits of the post-hoc reconstructor, e.g. 128"),
    "n_test": (1, BIG, "held-out edits, e.g. 64"),
    "epochs": (1, 10_000, "passes over the training edits, e.g. 8"),
    "n_sources": (0, BIG, "samples for the training-free directions (0: none), e.g. 256"),
    "rel": (1e-6, 100, "|dh| relative to rms(h) at strength 1, e.g. 0.5"),
    "n_samples": (1, 100_000, "samples in the grid, e.g. 64"),
    "n_eval": (0, BIG, "samples scored (0: skip), e.g. 1000"),
    "batch": (1, 16_384, "images per batch, e.g. 8"),
    "repeats": (1, 1000, "timed repeats, e.g. 2"),
    "head_init_std": (0, 10, "the heads' initial std (0: the paper's zero heads)"),
    "target": (1e-6, 2, "the mean |pixel change| at S/2 every set is rescaled to, e.g. 0.05"),
}
"""Valid ranges of the chapters' numeric parameters, with what each means (the fix a refusal
names); ``steps`` and ``sample_steps`` take -1 (the preset's) or a positive count."""
CHAPTER_BOUNDS: dict[tuple[str, str], tuple[float, float, str]] = {
    ("fid", "n"): (10, BIG, "samples per set, e.g. 1000 (an FD from fewer means nothing)"),
    ("truth", "n"): (2, 100_000, "noises per direction, e.g. 32 (the intervals bootstrap over them)"),
    ("compare", "n_interp"): (2, 100_000, "noises per direction, e.g. 4"),
}


def check_bounds(chapter: str, name: str, value: object) -> None:
    """Refuse a numeric parameter outside its range (:data:`BOUNDS`, :data:`CHAPTER_BOUNDS`),
    naming the range and what the parameter means; ``ks`` (direction indices) must be whole
    numbers >= 0 (:func:`check_directions` checks them against K once a model is loaded)."""
    if name in ("steps", "sample_steps"):
        if value != -1 and not (isinstance(value, int) and value >= 1):
            raise ValueError(f"chapter {chapter}: parameter {name}={value!r} is out of range: valid -1 (the "
                             "preset's) or a positive count; nothing was run")
        return
    if name == "ks":
        bad = [k for k in value if isinstance(k, bool) or not isinstance(k, int) or k < 0]
        if bad:
            raise ValueError(f"chapter {chapter}: parameter ks={value!r} holds {bad}: valid direction indices are "
                             "whole numbers from 0 to K - 1 ([] for the leading ones); nothing was run")
        return
    bounds = CHAPTER_BOUNDS.get((chapter, name), BOUNDS.get(name))
    if bounds is None or isinstance(value, bool) or not isinstance(value, int | float):
        return
    low, high, what = bounds
    if not low <= value <= high:  # NaN fails too
        raise ValueError(f"chapter {chapter}: parameter {name}={value!r} is out of range: valid [{low:g}, {high:g}], "
                         f"{what}; nothing was run")


def check_directions(chapter: str, ks: list[int], K: int) -> None:
    """Refuse direction indices ``ks`` a model of K directions does not have."""
    bad = [k for k in ks if not 0 <= k < K]
    if bad:
        raise ValueError(f"chapter {chapter}: ks={ks} names {bad}, but the model has directions 0 to {K - 1}")


def typed_parameters(chapter: str, namespace: dict) -> dict[str, object]:
    """Check and type ``chapter``'s parameters in ``namespace`` (a notebook's ``globals()``)
    in place: an injected name the chapter does not declare is refused with the valid ones,
    each declared parameter is read as its default's type and checked against its range
    (:func:`check_bounds`). Returns {name: value}."""
    declared = defaults(chapter)
    unknown = sorted(set(injected(namespace)) - set(declared))
    if unknown:
        raise ValueError(f"chapter {chapter}: unknown parameter(s) {', '.join(unknown)}; it takes "
                         f"{', '.join(declared)}. Nothing was run")
    for name, default in declared.items():
        namespace[name] = typed(chapter, name, namespace[name], default)
        check_bounds(chapter, name, namespace[name])
    return {name: namespace[name] for name in declared}
