#!/usr/bin/env bash
# coupling-analyze --torchscript end to end: examples/export_torchscript.py trains a small
# PyTorch GPT and exports checkpoints; coupling-analyze measures them (probes from a text file,
# then from a saved tensor) into standard logs; modules that break the convention, files
# without a step and a missing probe source are one-line errors.
# Usage: torchscript.sh path/to/coupling-analyze
set -euo pipefail
analyze=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 600); do echo "Blessed are the meek: for they shall inherit the earth."; done > "$work/tiny.txt"
$python "$here/../examples/export_torchscript.py" "$work/tiny.txt" "$work/ts" --steps 20 --save-every 10 --d 32 \
  --context 16 --broken > "$work/export.log"
common=(--probes 3 --k 4,8 --threads 1)

"$analyze" --torchscript "$work/ts/models" --probe-text "$work/tiny.txt" --length 16 "${common[@]}" \
  --log "$work/text.h5" > "$work/text.log" 2>&1 || { cat "$work/text.log"; exit 1; }
$python "$here/python/check_log.py" "$work/text.h5" 0,10,20
$python "$here/../scripts/plot_coupling.py" "$work/text.h5" --out "$work/plots" > "$work/plot.log"
test -s "$work/plots/coupling_vs_step.png"
"$analyze" --torchscript "$work/ts/models/step_20.pt" --torchscript "$work/ts/models/step_10.pt" \
  --probe-tensor "$work/ts/probes.pt" "${common[@]}" --log "$work/tensor.h5" > "$work/tensor.log" 2>&1 ||
  { cat "$work/tensor.log"; exit 1; }
$python - "$work/tensor.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert list(f["measurement/step"][:]) == [10, 20], f["measurement/step"][:]
    assert f["probes"].shape == (8, 16) and f.attrs["model"] == "torchscript", (f["probes"].shape, f.attrs["model"])
PY
echo "ok   exported PyTorch checkpoints measured (text probes: steps 0, 10, 20, plotted; saved-tensor probes: 8 x 16)"

# A diverged model (one NaN weight) is measured with its nonfinite flag set; the series goes on.
cp -r "$work/ts/models" "$work/diverged"
$python - "$work/diverged/step_10.pt" <<'PY'
import sys, torch
model = torch.jit.load(sys.argv[1])
with torch.no_grad():
    dict(model.named_parameters())["blocks.0.ln1.weight"].view(-1)[3] = float("nan")
model.save(sys.argv[1])
PY
"$analyze" --torchscript "$work/diverged" --probe-tensor "$work/ts/probes.pt" "${common[@]}" --log "$work/diverged.h5" \
  > "$work/diverged.log" 2>&1 || { cat "$work/diverged.log"; exit 1; }
grep -q "\[warning\] step 10: the model's values are not finite" "$work/diverged.log" || { cat "$work/diverged.log"; exit 1; }
$python - "$work/diverged.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f["measurement/nonfinite"][:].tolist() == [0, 1, 0], f["measurement/nonfinite"][:]
PY
echo "ok   a model with a NaN weight: measured with nonfinite = 1 and a warning, the series goes on"

expect_error() {
  local name=$1 message=$2
  shift 2
  local status=0
  "$analyze" "$@" "${common[@]}" > "$work/$name.log" 2>&1 || status=$?
  if [[ $status -ne 2 ]] || ! grep -Eq "\[error\] .*$message" "$work/$name.log"; then
    echo "FAIL $name (status $status)"; cat "$work/$name.log"; exit 1
  fi
  echo "ok   $name: $(grep -o '\[error\] .*' "$work/$name.log" | cut -c9-140)"
}
expect_error no_embed "has no method 'embed'" --torchscript "$work/ts/broken/no_embed.pt" \
  --probe-tensor "$work/ts/probes.pt" --log "$work/e1.h5"
expect_error no_causal "has no bool attribute 'causal'" --torchscript "$work/ts/broken/no_causal.pt" \
  --probe-tensor "$work/ts/probes.pt" --log "$work/e2.h5"
expect_error no_step "cannot tell the step of" --torchscript "$work/ts/broken" --probe-tensor "$work/ts/probes.pt" \
  --log "$work/e3.h5"
expect_error no_probes "give exactly one probe source" --torchscript "$work/ts/models" --log "$work/e4.h5"
