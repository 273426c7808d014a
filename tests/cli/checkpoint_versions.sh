#!/usr/bin/env bash
# Checkpoints across the two LibTorch builds (docs/install.md).
#  1. tests/fixtures/checkpoint-format-1, TorchScript checkpoints written before checkpoints were
#     data only: coupling-train --resume and coupling-analyze --checkpoints refuse it with exit 2
#     and one line naming the format, leaving the run as it was.
#  2. When the other build is there: a run checkpointed by one build resumes on the other with the
#     same training losses as the uninterrupted run (1e-4: another BLAS), both ways. The run has
#     no warm-up and a large learning rate, so losing the optimizer state would show.
#  3. tests/fixtures/checkpoint-format-2 (callback state keyed by position): resumed from step 4,
#     the run has the uninterrupted run's losses and coupling log (1e-4 of each field's scale: the
#     fixture's LibTorch may differ from this one), each step once, and its new checkpoint is
#     format 3 with the state keyed by the callback's name.
# Usage: checkpoint_versions.sh THIS_COUPLING_TRAIN OTHER_COUPLING_TRAIN FORMAT1_FIXTURE FORMAT2_FIXTURE
set -uo pipefail
this=$1 other=$2 fixture=$3 fixture2=$4
python=${COUPLING_PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0 passed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; shift; for f in "$@"; do echo "--- $f"; tail -5 "$f"; done; failures=$((failures + 1)); }

# 1. The committed run with format-1 checkpoints: refused without being opened, by both tools.
cp -r "$fixture" "$work/fixture"
expect_refusal() {
  local name=$1
  shift
  (cd "$work/fixture" && "$@" > "$work/$name.log" 2>&1)
  local s=$?
  if [[ $s -eq 2 && $(grep -c '\[error\]' "$work/$name.log") -eq 1 ]] &&
     grep '\[error\]' "$work/$name.log" | grep -q "has format 1 (TorchScript archives.*so it is not opened"; then
    ok "$name refuses format-1 checkpoints in one line: $(grep -o 'has format 1.*' "$work/$name.log" | cut -c1-90)..."
  else
    fail "$name on format-1 checkpoints (status $s)" "$work/$name.log"
  fi
}
expect_refusal "coupling-train --resume" "$this" gpt --resume run
expect_refusal "coupling-analyze --checkpoints" "$(dirname "$this")/coupling-analyze" --checkpoints run --log "$work/analysis.h5"
if diff -r -x .coupling-train.lock "$fixture" "$work/fixture" > /dev/null && [[ ! -e $work/analysis.h5 ]]; then
  ok "the refused run is left as it was, and no log was written"
else
  fail "the refused run was changed or a log was written"
fi

# The largest relative difference of the training losses of steps 5..8 (after a resume at step 4).
loss_difference() {
  paste -d, <(sed -n '6,9p' "$1/train_log.csv" | cut -d, -f2) <(sed -n '6,9p' "$2/train_log.csv" | cut -d, -f2) |
    awk -F, 'NF == 2 { d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > m) m = d; n++ } END { if (n != 4) print 1; else printf "%.2e", m }'
}

# 2. Across the builds, both ways.
if [[ ! -x $other ]]; then
  echo "skip cross-build resume: $other is not built"
else
  for i in $(seq 300); do echo "In the beginning God created the heaven and the earth."; done > "$work/tiny.txt"
  run=(gpt --data "$work/tiny.txt" --d-model 16 --layers 2 --heads 2 --context 16 --batch 4 --eval-windows 8
       --threads 1 --device cpu --steps 8 --ckpt-every 4 --warmup 0 --lr 1e-2 --log none)
  for pair in "$other $this" "$this $other"; do
    read -r writer reader <<<"$pair"
    name=$(basename "$(dirname "$(dirname "$writer")")")-to-$(basename "$(dirname "$(dirname "$reader")")")
    "$writer" "${run[@]}" --out "$work/$name" > "$work/$name.log" 2>&1
    cp -r "$work/$name" "$work/$name-resumed"
    rm -rf "$work/$name-resumed/checkpoints/step_8" "$work/$name-resumed/summary.json"
    "$reader" gpt --resume "$work/$name-resumed" > "$work/$name-resumed.log" 2>&1
    s=$?
    difference=$(loss_difference "$work/$name" "$work/$name-resumed")
    if [[ $s -eq 0 ]] && grep -q '"final_step": 8' "$work/$name-resumed/summary.json" &&
       awk -v d="$difference" 'BEGIN { exit !(d <= 1e-4) }'; then
      ok "$name: a checkpoint resumes on the other LibTorch (losses of steps 5-8 within $difference of the uninterrupted run)"
    else
      fail "$name: resume on the other LibTorch (status $s, losses differ by ${difference:-?})" "$work/$name-resumed.log"
    fi
  done
fi

# 3. A format-2 run resumed by this build.
cp -r "$fixture2" "$work/format2"
rm -rf "$work/format2/run/checkpoints/step_8" "$work/format2/run/summary.json"
(cd "$work/format2" && "$this" gpt --resume run > "$work/format2.log" 2>&1)
s=$?
difference=$(loss_difference "$fixture2/run" "$work/format2/run")
steps=$("$python" -c "import h5py, sys; print([int(s) for s in h5py.File(sys.argv[1], 'r')['measurement/step'][:]])" \
        "$work/format2/run/coupling.h5" 2>&1)
if [[ $s -eq 0 ]] && awk -v d="$difference" 'BEGIN { exit !(d <= 1e-4) }' && [[ $steps == "[0, 2, 4, 6, 8]" ]] &&
   "$python" "$here/../python/compare_logs.py" "$fixture2/run/coupling.h5" "$work/format2/run/coupling.h5" 0,2,4,6,8 \
     --every-field-scale 1e-4 > "$work/format2-compare.log" 2>&1 &&
   grep -q '"version": 3' "$work/format2/run/checkpoints/step_8/manifest.json" &&
   grep -q '"coupling.pending_since"' "$work/format2/run/checkpoints/step_8/state.json"; then
  ok "a format-2 run resumes from step 4: losses within $difference, log steps $steps equal to the uninterrupted run's, new checkpoint format 3 keyed by name"
else
  fail "format-2 resume (status $s, losses differ by ${difference:-?}, log steps $steps)" "$work/format2.log" \
    "$work/format2-compare.log"
fi
echo "$passed passed, $failures failed"
[[ $failures -eq 0 ]]
