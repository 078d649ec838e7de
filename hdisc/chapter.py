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


def typed_parameters(chapter: str, namespace: dict) -> dict[str, object]:
    """Check and type ``chapter``'s parameters in ``namespace`` (a notebook's ``globals()``)
    in place: an injected name the chapter does not declare is refused with the valid ones,
    and each declared parameter is read as its default's type. Returns {name: value}."""
    declared = defaults(chapter)
    unknown = sorted(set(injected(namespace)) - set(declared))
    if unknown:
        raise ValueError(f"chapter {chapter}: unknown parameter(s) {', '.join(unknown)}; it takes "
                         f"{', '.join(declared)}. Nothing was run")
    for name, default in declared.items():
        namespace[name] = typed(chapter, name, namespace[name], default)
    return {name: namespace[name] for name in declared}
