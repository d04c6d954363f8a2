#!/usr/bin/env bash
# A short headless tuning of ResNet-50 on this machine: progress, a results table, a recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
OUT=${DEMO_DIR:-demo-out}
mkdir -p "$OUT"
"$BUILD_DIR/app/ipex-tune" --workload resnet50 --headless \
  --db "$OUT/ipex-tune.db" --export "$OUT/resnet50-recipe.yaml" --measure-time 2
echo
echo "Measure the exported recipe against stock libtorch again, side by side:"
echo "  $BUILD_DIR/app/ipex-tune bench --workload resnet50 --recipe $OUT/resnet50-recipe.yaml"
