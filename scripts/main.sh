#!/usr/bin/env bash
# The main job: set up .venv/, then pretrain the cpu MNIST diffusion model and render
# its samples (executed notebook and outputs under runs/mnist32-cpu/).
# PRESET=smoke bash scripts/main.sh runs the same pipeline in about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PRESET=${PRESET:-cpu}
out=runs/mnist32-$PRESET
mkdir -p "$out"
extra=()
[ "$PRESET" = smoke ] && extra=(-p n_eval 64)
.venv/bin/papermill experiments/train_dm.ipynb "$out/train_dm.ipynb" \
  -p dataset mnist32 -p preset "$PRESET" -p out_dir "$out" "${extra[@]}"
echo "done: $out/train_dm.json, $out/samples.png, executed notebook $out/train_dm.ipynb"
