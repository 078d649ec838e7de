"""Sphinx extension for the hdisc book: pages that load cleanly offline.

- Each inline script appears once per page: the theme renders the inline scripts of
  sphinx-thebe and sphinx-togglebutton twice, and a second ``const THEBE_JS_URL`` is a
  SyntaxError in the browser's console. Repeated lines are removed from the built pages.
- The ipywidgets HTML manager asks for its icon fonts next to the page that embeds a
  widget, in ``<page folder>/@jupyter-widgets/html-manager/dist/`` and (some of its styles)
  in ``<page folder>/@jupyter-widgets/``; they are copied to both from the vendored package.
  A page whose widget draws an icon before the browser test looks asked for the second
  place and got a 404 (fresh-clone CI, fid page, once in three runs).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx

FONTS = (".woff", ".woff2", ".ttf", ".eot", ".svg")


def _unique_inline_scripts(html: str) -> str:
    """``html`` without a repeated inline ``<script>...</script>`` line (the first one stays)."""
    seen, out = set(), []
    for line in html.splitlines(keepends=True):
        tag = line.strip()
        if tag.startswith("<script>") and tag.endswith("</script>"):
            if tag in seen:
                continue
            seen.add(tag)
        out.append(line)
    return "".join(out)


def _finish(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    dist = Path(app.srcdir) / "book" / "_vendor" / "html-manager" / "dist"
    fonts = [f for f in dist.glob("*") if f.suffix in FONTS] if dist.is_dir() else []
    for page in Path(app.outdir).rglob("*.html"):
        html = page.read_text(errors="ignore")
        unique = _unique_inline_scripts(html)
        if unique != html:
            page.write_text(unique)
        if fonts and "embed-amd.js" in html:
            for target in (page.parent / "@jupyter-widgets" / "html-manager" / "dist",
                           page.parent / "@jupyter-widgets"):
                target.mkdir(parents=True, exist_ok=True)
                for f in fonts:
                    shutil.copy2(f, target / f.name)


def setup(app: Sphinx) -> dict:
    app.connect("build-finished", _finish)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
