#!/usr/bin/env bash
# Checkpoints across the two LibTorch builds (docs/install.md).
#  1. tests/fixtures/libtorch-1.13-run, written by LibTorch 1.13 before checkpoints recorded their
#     LibTorch: the 1.13 build resumes it to the end; a 2.x build refuses it with exit 2 and one
#     line naming both versions, leaving the run as it was.
#  2. When the other build is there: a run checkpointed by one build resumes on the other to the
#     same final losses as the uninterrupted run (1e-4: another BLAS), both ways.
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
  if [[ $s -eq 0 ]] && [[ $(tail -1 "$work/fixture/run/train_log.csv" | cut -d, -f1) == 3 ]]; then
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
       --threads 1 --device cpu --steps 8 --ckpt-every 4 --log none)
  final_loss() { grep -o '"val_loss": [0-9.eE+-]*' "$1/summary.json" | awk '{print $2}'; }
  for pair in "$other $this" "$this $other"; do
    read -r writer reader <<<"$pair"
    name=$(basename "$(dirname "$(dirname "$writer")")")-to-$(basename "$(dirname "$(dirname "$reader")")")
    "$writer" "${run[@]}" --out "$work/$name" > "$work/$name.log" 2>&1
    cp -r "$work/$name" "$work/$name-resumed"
    rm -rf "$work/$name-resumed/checkpoints/step_8"
    "$reader" gpt --resume "$work/$name-resumed" > "$work/$name-resumed.log" 2>&1
    s=$?
    a=$(final_loss "$work/$name") b=$(final_loss "$work/$name-resumed")
    if [[ $s -eq 0 && -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * a) }'; then
      ok "$name: a checkpoint resumes on the other LibTorch (val_loss $a uninterrupted, $b resumed)"
    else
      fail "$name: resume on the other LibTorch (status $s, val_loss ${a:-?} vs ${b:-?})" "$work/$name-resumed.log"
    fi
  done
fi
echo "$passed passed, $failures failed"
[[ $failures -eq 0 ]]
