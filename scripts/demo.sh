#!/usr/bin/env bash
# The main job: set up, build, train the default GPT on the King James Bible with the coupling
# callback on a log-spaced schedule (about 7 minutes of training on 2 cores with OpenBLAS, after
# the first build), then plot the log and print the step-0 vs final table and the losses.
# Extra arguments go to `coupling-train gpt` (e.g. --steps 300).
#   scripts/demo.sh vit [args]: the same with the default ViT on Fashion-MNIST (about 6 minutes).
# Output: runs/demo/ or runs/demo-vit/ (coupling.h5, PNGs, checkpoints, CSV logs, config.toml,
# summary.json); a previous one is kept as runs/demo[-vit]-<its time>.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
model=gpt out=runs/demo
if [[ ${1:-} == vit ]]; then
  model=vit out=runs/demo-vit
  shift
fi
if [[ -e $out ]]; then
  kept="$out-$(date -r "$out" +%Y%m%d-%H%M%S)"
  mv "$out" "$kept"
  echo "demo: the previous demo run is now $kept"
fi
build/bin/coupling-train "$model" --out "$out" "$@"
echo
"${COUPLING_PYTHON:-/usr/bin/python3}" scripts/plot_coupling.py "$out/coupling.h5" --summary "$out/summary.json"
echo
echo "== $out/summary.json"
cat "$out/summary.json"
