#!/usr/bin/env bash
# The main job: the whole book at the cpu preset on the embedded MNIST, from nothing:
# pretrain the DM, train the directions, run every chapter, build the site (_build/html).
#   RENDER=committed bash scripts/main.sh   re-render from the committed models, no training
#   PRESET=smoke bash scripts/main.sh       the same pipeline in minutes (what CI builds)
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/book.sh
