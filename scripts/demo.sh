#!/usr/bin/env bash
# The main job: set up, build, then train the default GPT on the King James Bible and print the
# run's summary. Extra arguments go to `coupling-train gpt` (e.g. --steps 300 for a quick look).
# Output: runs/demo-<timestamp>/ (checkpoints, train/eval logs, config.toml, summary.json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
out=runs/demo-$(date +%Y%m%d-%H%M%S)
build/bin/coupling-train gpt --out "$out" "$@"
echo
echo "== $out/summary.json"
cat "$out/summary.json"
