#!/usr/bin/env bash
# The main job: the book at the cpu preset on the embedded MNIST, rendered from the models
# committed in models/mnist32-cpu/ (no training; minutes): every chapter, the site in _build/html.
#   RENDER=full bash scripts/main.sh     everything from nothing: pretrain the DM, train the
#                                        directions (about 10 hours here), then the book
#   PRESET=smoke bash scripts/main.sh    the whole pipeline in minutes, trained from nothing (what CI builds)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RENDER:-}" ]; then  # render what is committed for this preset, else train it
  if [ -f "models/mnist32-${PRESET:-cpu}/directions.pt" ]; then RENDER=committed; else RENDER=full; fi
fi
export RENDER
exec bash scripts/book.sh
