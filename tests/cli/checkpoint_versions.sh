#!/usr/bin/env bash
# Checkpoints across the two LibTorch builds (docs/install.md).
#  1. tests/fixtures/libtorch-1.13-run, written by LibTorch 1.13 before checkpoints recorded their
#     LibTorch: the 1.13 build resumes it to the end; a 2.x build refuses it with exit 2 and one
#     line naming both versions, leaving the run as it was.
#  2. When the other build is there: a run checkpointed by one build resumes on the other with the
#     same training losses as the uninterrupted run (1e-4: another BLAS), both ways. The run has
#     no warm-up and a large learning rate, so losing the optimizer state would show.
# Usage: checkpoint_versions.sh THIS_COUPLING_TRAIN OTHER_COUPLING_TRAIN FIXTURE_DIR THIS_LIBTORCH_VERSION
set -uo pipefail
this=$1 other=$2 fixture=$3 version=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0 passed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; shift; for f in "$@"; do echo "--- $f"; tail -5 "$f"; done; failures=$((failures + 1)); }

# 1. The committed 1.13 run.
cp -r "$fixture" "$work/fixture"
(cd "$work/fixture" && "$this" gpt --resume run > "$work/fixture.log" 2>&1)
s=$?
if [[ $version == 1.* ]]; then
  if [[ $s -eq 0 && -d $work/fixture/run/checkpoints/step_4 ]] &&
     grep -q '"final_step": 4' "$work/fixture/run/summary.json"; then
    ok "LibTorch $version resumes the committed 1.13 run to its end"
  else
    fail "LibTorch $version did not resume the committed 1.13 run (status $s)" "$work/fixture.log"
  fi
else
  if [[ $s -eq 2 && $(grep -c '\[error\]' "$work/fixture.log") -eq 1 ]] &&
     grep '\[error\]' "$work/fixture.log" | grep -Eq "LibTorch 1\.x .*LibTorch $version "; then
    ok "a 2.x build refuses the committed 1.13 run: $(grep -o 'holds optimizer state.*' "$work/fixture.log" | cut -c1-120)..."
  else
    fail "the committed 1.13 run on a 2.x build (status $s)" "$work/fixture.log"
  fi
  if cmp -s "$fixture/run/train_log.csv" "$work/fixture/run/train_log.csv"; then
    ok "the refused run is left as it was"
  else
    fail "the refused run was changed"
  fi
fi

# 2. Across the builds, both ways.
if [[ ! -x $other ]]; then
  echo "skip cross-build resume: $other is not built"
else
  for i in $(seq 300); do echo "In the beginning God created the heaven and the earth."; done > "$work/tiny.txt"
  run=(gpt --data "$work/tiny.txt" --d-model 16 --layers 2 --heads 2 --context 16 --batch 4 --eval-windows 8
       --threads 1 --device cpu --steps 8 --ckpt-every 4 --warmup 0 --lr 1e-2 --log none)
  # The largest relative difference of the training losses of steps 4..7 (after the resume).
  loss_difference() {
    paste -d, <(sed -n '6,9p' "$1/train_log.csv" | cut -d, -f2) <(sed -n '6,9p' "$2/train_log.csv" | cut -d, -f2) |
      awk -F, 'NF == 2 { d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > m) m = d; n++ } END { if (n != 4) print 1; else printf "%.2e", m }'
  }
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
      ok "$name: a checkpoint resumes on the other LibTorch (losses of steps 4-7 within $difference of the uninterrupted run)"
    else
      fail "$name: resume on the other LibTorch (status $s, losses differ by ${difference:-?})" "$work/$name-resumed.log"
    fi
  done
fi
echo "$passed passed, $failures failed"
[[ $failures -eq 0 ]]
