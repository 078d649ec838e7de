#!/usr/bin/env bash
# The committed cpu direction model's lineage, retrained from zero heads in one command:
#   bash scripts/lineage.sh            (runs/lineage/stage{1,2,3}; rerun to resume)
#   DEVICE=cuda bash scripts/lineage.sh
# Each stage warm-starts from the one before (init_from), on the committed DM:
#   1. the first cpu recipe (M=5, free shifts, batch 16), 9,850 steps (where it was stopped)
#   2. probe q2's recipe (M=10, |dh| capped at 0.1 rms(h), |s| >= 1, lambda_mag 0.5), batch 16, 1,200 steps
#   3. the cpu preset as it stands (q2's recipe at batch 64), 1,000 steps
# Stages 1 and 2 ran on one thread of this CPU, stage 3 on an H100 (TF32 convolutions), so
# this repeats the recipe, not the committed bits. On this CPU: about 4.8 h + 3.0 h + 6.3 h
# (models/mnist32-cpu/train.json, results/mnist32-cpu/lineage_stage2.json and precision.json).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
out=runs/lineage
run() { .venv/bin/python -m hdisc.discover --dataset mnist32 --preset cpu --device "${DEVICE:-cpu}" "$@"; }
run --out "$out/stage1" --set M=5 batch=16 steps=9850 lambda_mag=0.1 shift_norm=free shift_rms=0 s_min=0 \
  checkpoint_every=50
run --out "$out/stage2" --init-from "$out/stage1/directions.pt" --set batch=16 steps=1200 checkpoint_every=50
run --out "$out/stage3" --init-from "$out/stage2/directions.pt"
echo "the lineage's last stage: $out/stage3/directions.pt (render the book from it: see README)"
