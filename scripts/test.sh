#!/usr/bin/env bash
# The test command: set up .venv/ (and Debian's Chromium for the browser tests), lint,
# check the notebook pairs, build the smoke book, run pytest's two tiers (arguments go to pytest).
# SKIP_BOOK=1 reuses an existing _build/html instead of rebuilding the smoke book.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing Debian's chromium for the browser tests"
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
.venv/bin/ruff check hdisc tests experiments book scripts research
# every experiments/*.py and book/*.py must match its committed, output-free .ipynb
for py in experiments/*.py book/*.py; do
  .venv/bin/jupytext --to ipynb --output - "$py" | .venv/bin/python scripts/same_notebook.py "${py%.py}.ipynb"
done
if [ -z "${SKIP_BOOK:-}" ]; then
  PRESET=smoke bash scripts/book.sh
fi
.venv/bin/python -m pytest -m "slow or not slow" --durations=15 "$@"  # both tiers; a bare pytest runs the fast one
