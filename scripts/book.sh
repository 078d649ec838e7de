#!/usr/bin/env bash
# Run every chapter with papermill, then build the Jupyter Book into _build/html.
#   PRESET=cpu|smoke        the scale the chapters run at (default cpu)
#   RENDER=full|committed   full: train the DM and the directions in runs/mnist32-$PRESET
#                           (resuming if stopped); committed: use models/mnist32-$PRESET
#                           as committed, without training
# Chapter records (JSON) go to results/mnist32-$PRESET/, executed notebooks to book/_executed/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
setup_s=$SECONDS  # installing (or checking) the environment
PRESET=${PRESET:-cpu}
RENDER=${RENDER:-full}
case "$RENDER" in
  full) models=runs/mnist32-$PRESET; train=True ;;
  committed) models=models/mnist32-$PRESET; train=False ;;
  *) echo "RENDER must be full or committed, got '$RENDER'" >&2; exit 2 ;;
esac
if [ "$RENDER" = committed ] && [ ! -f "$models/directions.pt" ]; then
  echo "RENDER=committed needs $models/directions.pt and dm_ema.pt; use RENDER=full to train them" >&2
  exit 2
fi
results=results/mnist32-$PRESET
executed=book/_executed
mkdir -p "$models" "$results" "$executed"
bash scripts/vendor_js.sh book/_vendor

timing=$(mktemp)  # "name seconds" per stage, written to $results/book_timing.json at the end
trap 'rm -f "$timing"' EXIT
echo "setup $setup_s" >> "$timing"
pm_to() {  # pm_to PAGE NOTEBOOK [papermill args...]: execute experiments/NOTEBOOK.ipynb into the book's PAGE
  local page=$1 name=$2 start=$SECONDS; shift 2
  echo "== $page ($PRESET, $RENDER)"
  .venv/bin/papermill --no-progress-bar "experiments/$name.ipynb" "$executed/$page.ipynb" \
    -p dataset mnist32 -p preset "$PRESET" "$@"
  echo "$page $((SECONDS - start))" >> "$timing"
  echo "   $page took $((SECONDS - start)) s"
}
pm() { pm_to "$1" "$@"; }  # pm NOTEBOOK [papermill args...]: the MNIST chapters, each on its own page
small=()  # smoke: fewer samples, so the whole book builds in minutes
if [ "$PRESET" = smoke ]; then
  small=(-p n_real 4 -p invert_steps 20)
fi
trained=(-p directions "$models/directions.pt" -p dm_checkpoint "$models/dm_ema.pt")

pm train_dm -p out_dir "$models" -p train "$train" $([ "$PRESET" = smoke ] && echo "-p n_eval 64")
pm train -p out_dir "$models" -p dm_checkpoint "$models/dm_ema.pt" -p train "$train" \
  $([ "$PRESET" = smoke ] && echo "-p n_rca 32")

# The chapters below read the trained models and write their own records, so they run in two
# lanes, one thread each (both cores at work; records name the thread count they ran with).
# A committed render computes no research analysis: the directions chapter's interpretability
# evaluation, the comparison with the training-free families (over an hour at one thread),
# the shapes truth comparison (not yet finished at the cpu preset: over 100 minutes at one
# thread) and a released DM's 1,000-sample evaluation are shown from records made from these
# model files (each chapter refuses a record of other files); RENDER=full computes them again.
lane_a() {  # the directions first: the chapters after it read its ranking from its record
  if [ "$RENDER" = committed ] && [ -f "$results/benchmark.json" ]; then
    pm benchmark -p out_dir "$results" -p from_record "$results/benchmark.json"
  else
    pm benchmark -p out_dir "$results" -p dm_checkpoint "$models/dm_ema.pt"
  fi
  pm directions -p out_dir "$results" "${trained[@]}" \
    $([ "$RENDER" = committed ] && [ -f "$results/directions.json" ] && echo "-p interp_from $results/directions.json")
  pm real_editing -p out_dir "$results" "${trained[@]}" "${small[@]}"
  pm properties -p out_dir "$results" "${trained[@]}" "${small[@]}" $([ "$PRESET" = smoke ] && echo "-p n_mean 8")
  pm fid -p out_dir "$results" "${trained[@]}" $([ "$PRESET" = smoke ] && echo "-p n 128")
}
lane_b() {
  pm rca_mos -p out_dir "$results" "${trained[@]}" $([ "$PRESET" = smoke ] && echo "-p n_rca 64")
  if [ "$RENDER" = committed ] && [ -f "$results/compare.json" ] && [ -f "$results/compare_directions.png" ]; then
    pm compare -p out_dir "$results" "${trained[@]}" -p from_record "$results/compare.json"
  else
    pm compare -p out_dir "$results" "${trained[@]}" \
      $([ "$PRESET" = smoke ] && echo "-p n_pca 32 -p jacobian_iters 2 -p n_interp 2 -p n_train 8 -p n_test 4 -p epochs 1")
  fi
  # shapes32, where the truth is known: its released DM (models/shapes32-$PRESET) when rendering
  # what is committed, else one trained in runs/. While no shapes32 DM of this preset is
  # released, a committed render shows the part at the smoke preset (each page names its preset)
  local sp=$PRESET
  if [ "$RENDER" = committed ] && [ ! -f "models/shapes32-$sp/dm_ema.pt" ]; then
    echo "no released shapes32 DM in models/shapes32-$sp: the shapes part renders at the smoke preset"; sp=smoke
  fi
  local shapes=models/shapes32-$sp shapes_train=False
  if [ "$RENDER" = full ] || [ ! -f "$shapes/dm_ema.pt" ]; then shapes=runs/shapes32-$sp; shapes_train=True; fi
  local shapes_results=results/shapes32-$sp
  mkdir -p "$shapes" "$shapes_results"
  pm_to shapes_train_dm train_dm -p dataset shapes32 -p preset "$sp" -p out_dir "$shapes" -p train "$shapes_train" \
    $([ "$sp" = smoke ] && echo "-p n_eval 32")
  # without a truth record of this preset the comparison renders at the smoke preset, on a DM
  # trained in seconds
  local tp=$sp truth_dm=$shapes/dm_ema.pt
  if [ "$RENDER" = committed ] && [ ! -f "$shapes_results/truth.json" ] && [ "$sp" != smoke ]; then
    echo "no truth record in $shapes_results: the truth chapter renders at the smoke preset"; tp=smoke
    .venv/bin/python -m hdisc.pretrain --dataset shapes32 --preset smoke --out runs/shapes32-smoke >/dev/null
    truth_dm=runs/shapes32-smoke/dm_ema.pt; mkdir -p results/shapes32-smoke
  fi
  local truth_results=results/shapes32-$tp
  pm_to truth truth -p dataset shapes32 -p preset "$tp" -p out_dir "$truth_results" -p dm_checkpoint "$truth_dm" \
    $([ "$RENDER" = committed ] && [ -f "$truth_results/truth.json" ] && echo "-p from_record $truth_results/truth.json") \
    $([ "$tp" = smoke ] && echo "-p n 3 -p n_pca 12")
  pm explore "${trained[@]}"  # reads the directions chapter's ranking when lane A has written it (else ranks: the same order)
}
(export OMP_NUM_THREADS=1; lane_a) & a=$!
(export OMP_NUM_THREADS=1; lane_b) & b=$!
failed=0
wait $a || failed=1
wait $b || failed=1
if [ $failed = 1 ]; then echo "a chapter failed (its error is above)" >&2; exit 1; fi
echo "== reproduction tables"
start=$SECONDS
.venv/bin/papermill --no-progress-bar book/reproduction.ipynb "$executed/reproduction.ipynb" \
  -p dataset mnist32 -p preset "$PRESET" -p results "$results" -p models "$models"
echo "reproduction $((SECONDS - start))" >> "$timing"
start=$SECONDS
.venv/bin/jupyter-book build . -W --path-output . >/dev/null
echo "jupyter-book $((SECONDS - start))" >> "$timing"
.venv/bin/python -c "
import os, sys
from hdisc.files import write_json
stages = {name: int(s) for name, s in (line.split() for line in sys.stdin)}
write_json(sys.argv[1], {'preset': sys.argv[2], 'render': sys.argv[3], 'seconds': stages,
                         'wall_s': int(sys.argv[4]), 'wall_after_setup_s': int(sys.argv[4]) - stages['setup'],
                         'lanes': 2, 'cpus': os.cpu_count(),
                         'what': 'seconds per stage; after train, two lanes of chapters run side by side, one '
                                 'thread each, so wall_s (the whole job, setup included) is less than their sum'})
" "$results/book_timing.json" "$PRESET" "$RENDER" "$SECONDS" < "$timing"
echo "built: _build/html/index.html (records in $results, models in $models; stage times in $results/book_timing.json)"
