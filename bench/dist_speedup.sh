#!/usr/bin/env bash
# Data-parallel speed-ups measured side by side in one run (docs/performance.md):
#  1. one coupling measurement on 1 rank vs shared by 2 ranks, one intra-op thread per rank;
#  2. GPT training throughput on 1 rank vs 2 ranks (one thread each) and the share of a step
#     spent in the gradient/loss all-reduces.
# Usage: bench/dist_speedup.sh [build/bin]   (MASTER_PORT may be exported; default 29530)
set -euo pipefail
bin=${1:-build/bin}
root=$(cd "$(dirname "$0")/.." && pwd)
export MASTER_ADDR=127.0.0.1 MASTER_PORT=${MASTER_PORT:-29530}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ratio() { /usr/bin/python3 -c "print(f'{$1 / $2:.2f}')"; }

for size in "--d-model 256 --layers 4 --context 64" "--d-model 768 --layers 2 --context 128"; do
  "$bin/coupling-dist-bench" $size --threads 1 > "$work/one.txt"
  COUPLING_TRAIN="$bin/coupling-dist-bench" "$root/scripts/launch.sh" 2 $size --threads 1 > "$work/two.txt"
  cat "$work/one.txt" "$work/two.txt"
  one=$(grep -o 'measurement [0-9.]*' "$work/one.txt" | cut -d' ' -f2)
  two=$(grep -o 'measurement [0-9.]*' "$work/two.txt" | cut -d' ' -f2)
  echo "measurement speed-up, 2 ranks vs 1 ($size): $(ratio "$one" "$two")x"
done

train=(gpt --steps 60 --log none --eval-every 0 --ckpt-every 0 --log-every 60 --threads 1)
"$bin/coupling-train" "${train[@]}" --out "$work/one" > "$work/one.log" 2>&1
COUPLING_TRAIN="$bin/coupling-train" "$root/scripts/launch.sh" 2 "${train[@]}" --out "$work/two" > "$work/two.log" 2>&1
rate() { /usr/bin/python3 -c "import json; print(round(json.load(open('$1'))['tokens_per_second']))"; }
r1=$(rate "$work/one/summary.json")
r2=$(rate "$work/two/summary.json")
echo "training (default GPT, global batch 32, 60 steps): 1 rank $r1 tok/s, 2 ranks $r2 tok/s," \
     "speed-up $(ratio "$r2" "$r1")x"
grep -o 'data-parallel: .* all-reduces ([0-9.]*%)' "$work/two.log"
