#!/usr/bin/env bash
# examples/measure_gpt end to end: train a tiny GPT briefly, then measure step 0 vs the last
# checkpoint; the report must show finite coupling, LSS and norm-growth rows for both columns.
# Usage: measure_gpt.sh path/to/coupling-train path/to/measure_gpt
set -euo pipefail
train=$1
measure=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 400); do echo "And God said, Let there be light: and there was light."; done > "$work/tiny.txt"
"$train" gpt --data "$work/tiny.txt" --out "$work/run" --d-model 32 --layers 3 --heads 2 --context 32 \
  --batch 8 --steps 60 --warmup 10 --lr 3e-3 --eval-windows 8 --threads 1 > "$work/train.log" 2>&1
"$measure" "$work/run" 3 | tee "$work/report.txt"
grep -q "step 0 .*step 60" "$work/report.txt"
grep -E "^depth m_K ujv/norm, mean off-diag, K=10 +[0-9.]+ +[0-9.]+$" "$work/report.txt"
grep -E "^line-shape score \(1 = straight\) +[0-9.]+ +[0-9.]+$" "$work/report.txt"
if grep -qi "nan" "$work/report.txt"; then echo "NaN in report"; exit 1; fi
echo "1 passed, 0 failed"
