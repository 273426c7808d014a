#!/usr/bin/env bash
# The step-0 checkpoint and honest overhead, end to end:
# - a run saves checkpoints/step_0 before its step-0 measurement; the token coupling it logs
#   (--tokens 31,-1) equals an independent brute-force recomputation from those weights;
# - the wall clock includes every measurement: measure_seconds <= wall_seconds, overhead =
#   measure / (wall - measure), and the log's train_seconds exclude measurements;
# - a run killed during its (deliberately expensive) step-0 measurement resumes from step 0
#   with one step-0 row.
# Usage: step_zero.sh path/to/coupling-train
set -euo pipefail
train=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$work"' EXIT
pid=
for i in $(seq 600); do echo "And God said, Let there be light: and there was light."; done > "$work/tiny.txt"
gpt=(gpt --data "$work/tiny.txt" --d-model 16 --layers 2 --heads 2 --context 64 --batch 4 --threads 1
     --eval-windows 4 --probes 2 --k 2,4 --steps 6 --ckpt-every 3 --spectrum exact --measure-schedule checkpoints)

"$train" "${gpt[@]}" --tokens 31,-1 --out "$work/run" > "$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }
test -s "$work/run/checkpoints/step_0/model.safetensors"
$python "$here/python/check_log.py" "$work/run/coupling.h5" 0,3,6
$python "$here/python/check_token_coupling.py" "$work/run" "$work/run/coupling.h5" --heads 2 --step 0
echo "ok   step-0 checkpoint; token coupling = brute force from its weights"

# The overhead bookkeeping of a finished run: the summary's and the log's numbers agree.
check_overhead() {
  $python - "$1" <<'PY'
import json, sys
import h5py
run = sys.argv[1]
s = json.load(open(f"{run}/summary.json"))
wall, measure, overhead = s["wall_seconds"], s["measure_seconds"], s["overhead_fraction"]
assert 0 < measure <= wall, (measure, wall)
assert abs(overhead - measure / (wall - measure)) <= 1e-6 * overhead + 1e-12, (overhead, measure, wall)
with h5py.File(f"{run}/coupling.h5", "r", swmr=True, libver="latest") as f:
    m = f["measurement"]
    train, spent, at = m["train_seconds"][:], m["measure_seconds"][:], m["wall_seconds"][:]
    assert abs(spent.sum() - measure) <= 1e-6 * measure, (spent.sum(), measure)
    assert (train >= 0).all(), train
    # Wall time at each measurement = measurements before it + training before it.
    for i in range(len(at)):
        assert abs(at[i] - spent[:i].sum() - train[: i + 1].sum()) <= 1e-6 * max(at[i], 1), (i, at, spent, train)
    assert at[-1] + spent[-1] <= wall + 1e-9, (at[-1], spent[-1], wall)
print(f"ok   {run.split('/')[-1]}: overhead {overhead:.3f} = measure {measure:.2f} s / (wall {wall:.2f} s - measure)")
PY
}
check_overhead "$work/run"

# Killed during the step-0 measurement (64 tokens x 2 blocks x 8 probes of Jacobians): stopped
# as soon as its log exists (the log is created after the step-0 checkpoint, right before the
# measurement), then killed. Its resumed log must equal an uninterrupted run's, bit for bit.
expensive=("${gpt[@]}" --tokens all --probes 8 --d-model 32)
"$train" "${expensive[@]}" --out "$work/whole" > "$work/whole.log" 2>&1 || { cat "$work/whole.log"; exit 1; }
"$train" "${expensive[@]}" --out "$work/killed" > "$work/killed.log" 2>&1 &
pid=$!
for i in $(seq 3000); do
  [[ -e $work/killed/coupling.h5 ]] && break
  sleep 0.02
done
kill -STOP $pid
if [[ -d $work/killed/checkpoints/step_3 || ! -d $work/killed/checkpoints/step_0 ]]; then
  echo "FAIL: the run was not stopped between its step-0 checkpoint and step 3"; ls "$work/killed/checkpoints"; exit 1
fi
kill -9 $pid; wait $pid 2>/dev/null || true
"$train" gpt --resume "$work/killed" > "$work/resumed.log" 2>&1 || { cat "$work/resumed.log"; exit 1; }
grep -q "resumed from .*step_0 at step 0" "$work/resumed.log" || { cat "$work/resumed.log"; exit 1; }
$python "$here/python/check_log.py" "$work/killed/coupling.h5" 0,3,6
for step in 0 3 6; do
  $python "$here/python/compare_logs.py" "$work/whole/coupling.h5" "$work/killed/coupling.h5" 0,3,6 --bitwise $step \
    > /dev/null
done
echo "ok   killed during the step-0 measurement, resumed from step_0: one step-0 row, the uninterrupted run's log bit for bit"
check_overhead "$work/killed"  # measurements dominate this run
