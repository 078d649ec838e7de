"""Exit 1 unless the notebook on stdin has the same cells as the committed one named in argv[1].

Compares cell types, sources and tags, and requires the committed notebook to hold no
outputs (executed copies belong to runs/ and the book, not to experiments/).
"""

import json
import sys


def cells(nb: dict) -> list[tuple]:
    return [(c["cell_type"], "".join(c["source"]), tuple(c.get("metadata", {}).get("tags", [])))
            for c in nb["cells"]]


def main() -> int:
    fresh, path = json.load(sys.stdin), sys.argv[1]
    with open(path) as f:
        committed = json.load(f)
    if cells(fresh) != cells(committed):
        print(f"{path} is out of sync with its .py: run jupytext --sync {path}", file=sys.stderr)
        return 1
    if any(c.get("outputs") or c.get("execution_count") for c in committed["cells"] if c["cell_type"] == "code"):
        print(f"{path} has outputs: clear them before committing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
