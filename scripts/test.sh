#!/usr/bin/env bash
# The test command: set up .venv/, then lint, check notebook pairs, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
.venv/bin/ruff check hdisc tests experiments
# every experiments/*.py must match its committed, output-free .ipynb
for py in experiments/*.py; do
  .venv/bin/jupytext --to ipynb --output - "$py" | .venv/bin/python scripts/same_notebook.py "${py%.py}.ipynb"
done
.venv/bin/python -m pytest "$@"
