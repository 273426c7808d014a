#!/usr/bin/env bash
# The instrumented trainer end to end: the coupling log holds exactly the scheduled steps (and
# reads back self-described through scripts/coupling_log.py), measuring does not change training
# (same loss curve as --log none), the plots script renders it, and after SIGKILL at two points
# the log stays readable (h5py SWMR) and --resume completes the run with a gapless,
# duplicate-free step axis.
# Usage: coupling_run.sh path/to/coupling-train
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
for i in $(seq 600); do echo "Blessed are the meek: for they shall inherit the earth."; done > "$work/tiny.txt"
tiny=(--data "$work/tiny.txt" --d-model 16 --layers 2 --heads 2 --context 16 --batch 4 --threads 1 --eval-windows 4
      --probes 3 --k 4,8)

# 1. Scheduled steps, training rows, and no effect on training.
"$bin" gpt "${tiny[@]}" --steps 12 --ckpt-every 4 --eval-every 4 --measure-schedule "every:5 steps:3" --out "$work/a" > "$work/a.log" 2>&1
$python "$here/python/check_log.py" "$work/a/coupling.h5" 0,3,5,10,12 --train-rows 12
/usr/bin/python3 "$here/python/test_coupling_log.py" "$work/a/coupling.h5" > "$work/reader.log" 2>&1 ||
  { cat "$work/reader.log"; exit 1; }
"$bin" gpt "${tiny[@]}" --steps 12 --ckpt-every 4 --eval-every 4 --log none --out "$work/plain" > "$work/plain.log" 2>&1
test ! -e "$work/plain/coupling.h5"
cmp <(cut -d, -f1-2 "$work/a/train_log.csv") <(cut -d, -f1-2 "$work/plain/train_log.csv")
echo "ok   schedule, training rows, training unchanged by measuring"

# 2. Plots.
$python "$here/../scripts/plot_coupling.py" "$work/a/coupling.h5" --out "$work/plots" --summary "$work/a/summary.json" > "$work/plot.log"
for png in depth_heatmaps coupling_vs_step lss_vs_step norms_vs_depth sigma_vs_depth loss_vs_step overhead; do
  test -s "$work/plots/$png.png" || { echo "missing $png.png"; cat "$work/plot.log"; exit 1; }
done
grep -q "depth m_K ujv/norm mean off-diag, K=4" "$work/plot.log"
echo "ok   plots"

# 3. SIGKILL twice, resume, gapless log.
run=(gpt "${tiny[@]}" --steps 300 --ckpt-every 20 --eval-every 50 --measure-schedule every:7 --log-every 100)
kill_after() {  # kill_after CHECKPOINT_STEP CMD...: run CMD, SIGKILL it once that checkpoint exists
  local wait_for=$1
  shift
  "$@" > "$work/killed.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do
    [[ -d "$work/k/checkpoints/step_$wait_for" ]] && break
    sleep 0.05
  done
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  $python - "$work/k/coupling.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r", swmr=True, libver="latest") as f:
    steps = list(f["measurement/step"][:])
    assert steps == sorted(set(steps)) and all(s % 7 == 0 for s in steps), steps
    print(f"     after SIGKILL: log readable with {len(steps)} measurements, last step {steps[-1]}")
PY
}
kill_after 40 "$bin" "${run[@]}" --out "$work/k"
kill_after 120 "$bin" gpt --resume "$work/k"
"$bin" gpt --resume "$work/k" > "$work/final.log" 2>&1
expected=$(seq -s, 0 7 294),300
$python "$here/python/check_log.py" "$work/k/coupling.h5" "$expected" --train-rows 300
$python - "$work/k/coupling.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r", swmr=True, libver="latest") as f:
    train = f["train/step"][:]
    assert (train == np.arange(300)).all(), "training rows are not 0..299 exactly once"
PY
echo "ok   SIGKILL at two points, resumed to a gapless log"
echo "3 passed, 0 failed"
