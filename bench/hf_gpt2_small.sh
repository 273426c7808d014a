#!/usr/bin/env bash
# coupling-analyze --hf on a GPT-2-small-shaped model (12 layers, d=768, 12 heads, random init,
# saved by transformers): the whole measurement of 8 probes of 128 tokens at the last token
# (token-local Jacobians, default spectra), timed, then coupling-bench case 6 on the same model:
# one block's Jacobian by the paper's algorithm, the generic path (both strategies) and the
# token-local path. docs/performance.md section 8 has the numbers and this command.
#   bench/hf_gpt2_small.sh [WORK_DIR]      (default: a temporary directory, removed at the end)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-$root/.venv/bin/python}
bin=${COUPLING_BIN:-$root/build/bin}
if [[ $# -gt 0 ]]; then
  work=$1
  mkdir -p "$work"
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
if [[ ! -f $work/gpt2-small/config.json ]]; then
  "$python" - "$work/gpt2-small" <<'PY'
import sys, torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
GPT2LMHeadModel(GPT2Config()).save_pretrained(sys.argv[1])  # GPT2Config() is GPT-2 small
PY
fi
# 8 probes of 128 seeded random token ids (no tokenizer is needed for timing).
"$python" -c "
import random
random.seed(1)
for _ in range(8): print(' '.join(str(random.randrange(50257)) for _ in range(128)))" > "$work/ids.txt"
rm -f "$work/gpt2-small.h5"
start=$(date +%s.%N)
"$bin/coupling-analyze" --hf "$work/gpt2-small" --probe-ids "$work/ids.txt" --log "$work/gpt2-small.h5"
echo "hf_gpt2_small: coupling-analyze --hf took $(echo "$(date +%s.%N) - $start" | bc) s in all"
"$bin/coupling-bench" --hf "$work/gpt2-small" --repeats 3 --json "$work/bench.json"
