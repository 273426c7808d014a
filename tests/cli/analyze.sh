#!/usr/bin/env bash
# coupling-analyze --checkpoints end to end: the post-hoc measurements of a GPT run's checkpoints
# equal the training-time ones at the same steps (the step-0 row bit for bit, from the step-0
# checkpoint); a re-run skips what the log holds; the plots script reads the result; a ViT run
# works too; no checkpoints, checkpoints of two different models, flags that would be ignored,
# a --log that is a directory, and appending to a schema-1 log are one-line errors.
# Usage: analyze.sh path/to/coupling-train path/to/coupling-analyze
set -euo pipefail
train=$(realpath "$1")
analyze=$(realpath "$2")
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 600); do echo "Blessed are the meek: for they shall inherit the earth."; done > "$work/tiny.txt"
gpt=(gpt --data "$work/tiny.txt" --d-model 16 --layers 2 --heads 2 --context 16 --batch 4 --threads 1 --eval-windows 4
     --probes 3 --k 4,8 --steps 12 --ckpt-every 4 --measure-schedule checkpoints)

"$train" "${gpt[@]}" --out "$work/run" > "$work/train.log" 2>&1
"$analyze" --checkpoints "$work/run" --threads 1 > "$work/analyze.log" 2>&1 || { cat "$work/analyze.log"; exit 1; }
$python "$here/python/check_log.py" "$work/run/analysis.h5" 0,4,8,12
# (captured first: a failing command substitution inside echo's arguments would not stop the test)
agreement=$($python "$here/python/compare_logs.py" "$work/run/coupling.h5" "$work/run/analysis.h5" 0,4,8,12 \
  --bitwise 0) || exit 1
echo "ok   post-hoc = training-time: $agreement"

"$analyze" --checkpoints "$work/run" --threads 1 > "$work/again.log" 2>&1
grep -q "0 model(s) measured, 4 already in the log" "$work/again.log" || { cat "$work/again.log"; exit 1; }
echo "ok   a re-run skips the 4 steps already in the log"

$python "$here/../scripts/plot_coupling.py" "$work/run/analysis.h5" --out "$work/plots" > "$work/plot.log"
test -s "$work/plots/coupling_vs_step.png"
echo "ok   plots of the analysis log"

$python "$here/python/make_images.py" "$work/images"
"$train" vit --data "$work/images" --patch 4 --d-model 16 --layers 2 --heads 2 --batch 16 --steps 20 --ckpt-every 10 \
  --eval-windows 32 --probes 2 --k 2 --threads 1 --log none --out "$work/vit" > "$work/vit.log" 2>&1
"$analyze" --checkpoints "$work/vit" --log "$work/vit.h5" --threads 1 > "$work/vit_analyze.log" 2>&1 ||
  { cat "$work/vit_analyze.log"; exit 1; }
$python "$here/python/check_log.py" "$work/vit.h5" 0,10,20
echo "ok   a ViT run's checkpoints"

# A diverged run's checkpoint (one NaN weight, its manifest consistent, as the trainer writes it):
# measured with its nonfinite flag set and a warning naming the step; the series goes on.
cp -r "$work/run" "$work/diverged" && rm "$work/diverged/analysis.h5"
$python - "$work/diverged/checkpoints/step_4" <<'PY'
import hashlib, json, os, struct, sys
model = os.path.join(sys.argv[1], "model.safetensors")
data = bytearray(open(model, "rb").read())
length = struct.unpack("<Q", data[:8])[0]
at = 8 + length + json.loads(data[8:8 + length])["blocks.0.attn.proj.weight"]["data_offsets"][0] + 8
data[at:at + 4] = struct.pack("<f", float("nan"))
open(model, "wb").write(bytes(data))
manifest_path = os.path.join(sys.argv[1], "manifest.json")
manifest = json.load(open(manifest_path))
manifest["files"]["model.safetensors"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
json.dump(manifest, open(manifest_path, "w"))
PY
"$analyze" --checkpoints "$work/diverged" --threads 1 > "$work/diverged.log" 2>&1 || { cat "$work/diverged.log"; exit 1; }
grep -q "\[warning\] step 4: the model's values are not finite" "$work/diverged.log" || { cat "$work/diverged.log"; exit 1; }
$python - "$work/diverged/analysis.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f["measurement/step"][:].tolist() == [0, 4, 8, 12], f["measurement/step"][:]
    assert f["measurement/nonfinite"][:].tolist() == [0, 1, 0, 0], f["measurement/nonfinite"][:]
PY
echo "ok   a checkpoint with a NaN weight: measured with nonfinite = 1 and a warning, the series goes on"

expect_error() {
  local name=$1 message=$2
  shift 2
  local status=0
  "$analyze" "$@" > "$work/$name.log" 2>&1 || status=$?
  if [[ $status -ne 2 ]] || ! grep -Eq "\[error\] $message" "$work/$name.log"; then
    echo "FAIL $name (status $status)"; cat "$work/$name.log"; exit 1
  fi
  echo "ok   $name: $(grep -o '\[error\] .*' "$work/$name.log" | cut -c9-150)"
}
expect_error checkpoints_with_k "--k does not apply to --checkpoints: .* drop --k" --checkpoints "$work/run" --k 4
expect_error checkpoints_with_tokens "--tokens does not apply to --checkpoints" --checkpoints "$work/run" --tokens all
cp "$work/run/checkpoints/step_0/config.toml" "$work/config.saved"
sed -i '1s/.*/# something else/' "$work/run/checkpoints/step_0/config.toml"
expect_error tampered_config "checkpoint .*/step_0 is corrupt: config.toml does not match its size and SHA-256" \
  --checkpoints "$work/run" --log "$work/tampered.h5"
mv "$work/config.saved" "$work/run/checkpoints/step_0/config.toml"
expect_error max_memory "the measurement needs about .* and 0.00 GiB is available \(--max-memory\)" --checkpoints "$work/run" \
  --log "$work/small.h5" --max-memory 1M
test ! -e "$work/small.h5" || { echo "FAIL max_memory: a log was written"; exit 1; }
mkdir "$work/log_dir"
expect_error log_is_directory "log path .*/log_dir is a directory: give a file name such as" --checkpoints "$work/run" \
  --log "$work/log_dir"
cp -r "$here/fixtures/schema-1-log" "$work/old"
# (its own checkpoints have format 1 and are refused first: tests/cli/checkpoint_versions.sh)
(cd "$work/old" && expect_error schema_1_log "run/coupling.h5 has log schema version 1 and this libcoupling \(.*\) writes version 4" \
  --checkpoints "$work/run" --log run/coupling.h5)
$python "$here/../scripts/plot_coupling.py" "$work/old/run/coupling.h5" --out "$work/old_plots" > "$work/old_plot.log"
test -s "$work/old_plots/coupling_vs_step.png"
echo "ok   plots of a schema-1 log"
mkdir "$work/empty"
expect_error no_checkpoints "no checkpoints under" --checkpoints "$work/empty"
"$train" "${gpt[@]}" --d-model 32 --steps 4 --out "$work/other" > "$work/other.log" 2>&1
cp -r "$work/other/checkpoints/step_4" "$work/run/checkpoints/step_100"
expect_error mixed_models "checkpoint .* holds another model than .* \(d-model differ\)" --checkpoints "$work/run" --log "$work/mixed.h5"
