#!/usr/bin/env bash
# TensorBoard from C++: `coupling-train --tensorboard DIR` and the custom trainer's
# TensorBoardCallback write event files that TensorBoard's own reader (EventAccumulator, from
# PyPI's tensorboard in .venv) loads whole: the expected tags with one event per update,
# evaluation and measurement, and values equal (to float32) to the HDF5 log's; after SIGKILL and
# --resume, TensorBoard drops the repeated steps (each update exactly once).
# Skipped (77) without .venv's tensorboard (scripts/setup.sh --torch pip installs it).
# Usage: tensorboard.sh path/to/coupling-train path/to/custom_trainer
set -euo pipefail
train=$1
custom=$2
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_TENSORBOARD_PYTHON:-$here/../.venv/bin/python}
[[ -x $python ]] || { echo "skip: no $python (scripts/setup.sh --torch pip)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 400); do echo "Blessed are the meek: for they shall inherit the earth."; done > "$work/tiny.txt"
tiny=(--data "$work/tiny.txt" --d-model 16 --layers 2 --heads 2 --context 16 --batch 4 --threads 1 --eval-windows 4
      --probes 3 --k 4,8)

"$train" gpt "${tiny[@]}" --steps 12 --eval-every 4 --measure-schedule every:5 --out "$work/run" \
  --tensorboard "$work/tb" > "$work/train.log" 2>&1 || { cat "$work/train.log"; exit 1; }
status=0
# 12 updates, evaluations at 4, 8, 12, measurements at 0, 5, 10, 12.
$python "$here/python/read_tensorboard.py" "$work/tb" --expect train/loss:12 train/lr:12 eval/val_loss:3 \
  coupling/offdiag_K4_ujv_norm:4 coupling/adjacent_K8_vju_trace:4 trajectory/line_shape_score:4 \
  trajectory/norm_growth_rate:4 measurement/seconds:4 coupling/offdiag_null_K4_ujv_norm:4 linearity/block_2:4 \
  || status=$?
((status == 0)) || exit $status
$python - "$work/tb" "$work/run/coupling.h5" <<'PY'
import sys
import h5py
import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

events = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
events.Reload()
def curve(tag):
    return np.array([e.step for e in events.Scalars(tag)]), np.array([e.value for e in events.Scalars(tag)])
with h5py.File(sys.argv[2], "r") as log:
    steps, loss = curve("train/loss")
    assert (steps == log["train/step"][:] + 1).all(), steps  # the log's rows are 0-based updates
    np.testing.assert_allclose(loss, log["train/loss"][:], rtol=1e-6)
    steps, val = curve("eval/val_loss")
    assert (steps == log["eval/step"][:]).all()
    np.testing.assert_allclose(val, log["eval/val_loss"][:], rtol=1e-6)
    m = log["measurement"]
    for o, orientation in enumerate(["ujv", "vju"]):
        for n, normalisation in enumerate(["norm", "trace"]):
            for i, k in enumerate(m["k"][:]):
                steps, values = curve(f"coupling/offdiag_K{k}_{orientation}_{normalisation}")
                assert (steps == m["step"][:]).all()
                np.testing.assert_allclose(values, m["depth_mean_offdiag_avg"][:, o, n, i], rtol=1e-6)
                _, values = curve(f"coupling/offdiag_null_K{k}_{orientation}_{normalisation}")
                np.testing.assert_allclose(values, m["depth_mean_offdiag_null_avg"][:, o, n, i], rtol=1e-6)
    steps, lss = curve("trajectory/line_shape_score")
    np.testing.assert_allclose(lss, m["line_shape_score"][:].mean(axis=(1, 2)), rtol=1e-6)
    for layer in (1, 2):  # 3 probes x 16 tokens >= d + 1 = 17: defined
        _, values = curve(f"linearity/block_{layer}")
        np.testing.assert_allclose(values, m["layer_linearity"][:, layer - 1], rtol=1e-6)
print("     values equal the HDF5 log's (train/loss, eval/val_loss, 12 coupling curves and their nulls, LSS, "
      "layer linearity)")
PY
echo "ok   coupling-train --tensorboard"

# SIGKILL once checkpoint 60 exists, then --resume: the steps after it come twice in the files,
# once in what TensorBoard shows.
"$train" gpt "${tiny[@]}" --steps 300 --ckpt-every 20 --eval-every 50 --measure-schedule every:7 --log-every 100 \
  --out "$work/killed" --tensorboard "$work/killed_tb" > "$work/killed.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  [[ -d $work/killed/checkpoints/step_60 ]] && break
  sleep 0.05
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
"$train" gpt --resume "$work/killed" > "$work/resumed.log" 2>&1 || { cat "$work/resumed.log"; exit 1; }
$python "$here/python/read_tensorboard.py" "$work/killed_tb" --expect train/loss:300 eval/val_loss:6 \
  coupling/offdiag_K4_ujv_norm:44
echo "ok   SIGKILL and --resume: every update once in TensorBoard"

"$custom" "$work/custom.h5" 30 "$work/custom_tb" > "$work/custom.log" 2>&1 || { cat "$work/custom.log"; exit 1; }
$python "$here/python/read_tensorboard.py" "$work/custom_tb" --expect train/loss:30 coupling/offdiag_K16_ujv_norm:3
echo "ok   custom_trainer's TensorBoardCallback"
echo "3 passed, 0 failed"
