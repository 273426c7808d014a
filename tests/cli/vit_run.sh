#!/usr/bin/env bash
# coupling-train vit end to end on a synthetic MNIST-format dataset (8x8 images, 3 classes):
# it learns (test accuracy > 0.9), the coupling log holds the scheduled steps with image probes
# and the CLS/centre tokens, the plots script renders it, an interrupted run resumes to the same
# loss curve (augmentation included), 2 data-parallel ranks train like 1, and bad data or a bad
# patch size are one-line errors.
# Usage: vit_run.sh path/to/coupling-train
set -euo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$python "$here/python/make_images.py" "$work/images"
tiny=(vit --data "$work/images" --patch 4 --d-model 16 --layers 2 --heads 2 --batch 16 --steps 300 --warmup 10 --lr 3e-3
      --eval-every 150 --eval-windows 96 --ckpt-every 150 --probes 3 --k 2,4 --measure-schedule every:150 --threads 1
      --augment crop+flip)

# 1. Learns; log and plots.
"$bin" "${tiny[@]}" --out "$work/a" > "$work/a.log" 2>&1 || { cat "$work/a.log"; exit 1; }
$python "$here/python/check_log.py" "$work/a/coupling.h5" 0,150,300 --train-rows 300
$python - "$work/a" <<'PY'
import json, sys, h5py
run = sys.argv[1]
s = json.load(open(f"{run}/summary.json"))
assert s["model"] == "vit" and s["test_accuracy"] > 0.9, s
with h5py.File(f"{run}/coupling.h5", "r") as f:
    assert f["probes"].shape == (3, 1, 8, 8), f["probes"].shape
    assert list(f["measurement/token"][:]) == [0, 4], f["measurement/token"][:]  # CLS and the centre patch
print(f"ok   learns: test_accuracy {s['test_accuracy']:.3f}; log holds image probes and tokens CLS, centre")
PY
$python "$here/../scripts/plot_coupling.py" "$work/a/coupling.h5" --out "$work/plots" --summary "$work/a/summary.json" > "$work/plot.log"
test -s "$work/plots/coupling_vs_step.png" && test -s "$work/plots/loss_vs_step.png"
echo "ok   plots"

# 2. Resume after losing the last checkpoint reproduces the loss curve.
"$bin" "${tiny[@]}" --out "$work/b" > "$work/b.log" 2>&1
rm -rf "$work/b/checkpoints/step_300" "$work/b/summary.json"
"$bin" vit --resume "$work/b" > "$work/b2.log" 2>&1 || { cat "$work/b2.log"; exit 1; }
cmp <(cut -d, -f1-2 "$work/a/train_log.csv") <(cut -d, -f1-2 "$work/b/train_log.csv")
echo "ok   resumed run has the same loss curve"

# 3. Two data-parallel ranks train like one. Only the summation order of the gradients differs,
#    and AdamW's per-element normalisation amplifies that float32 rounding step after step: a
#    30-step comparison once failed on a loaded machine at 1.2e-3 (relative) against its 1e-3
#    bound. Over 8 steps the difference stays near 1e-5, two orders below the bound.
short=("${tiny[@]}" --steps 8 --ckpt-every 8 --eval-every 8 --measure-schedule every:4)
"$bin" "${short[@]}" --out "$work/one" > "$work/one.log" 2>&1
MASTER_PORT=$(( 20000 + RANDOM % 20000 )) COUPLING_TRAIN="$bin" "$here/../scripts/launch.sh" 2 "${short[@]}" \
  --out "$work/two" > "$work/two.log" 2>&1 || { cat "$work/two.log"; exit 1; }
compared=$($python "$here/python/compare_runs.py" "$work/one" "$work/two" 2)
echo "ok   2 ranks = 1 rank: $compared"

# 4. Bad input.
for case in "missing:--data $work/nowhere:image data directory .* does not exist" \
            "patch:--patch 3:--patch 3 does not divide the image size 8"; do
  IFS=: read -r name flags message <<< "$case"
  status=0
  "$bin" "${tiny[@]}" $flags --out "$work/bad_$name" > "$work/bad_$name.log" 2>&1 || status=$?
  if [[ $status -ne 2 ]] || ! grep -Eq "\[error\] $message" "$work/bad_$name.log"; then
    echo "FAIL bad input $name (status $status)"; cat "$work/bad_$name.log"; exit 1
  fi
  echo "ok   bad input $name: $(grep -o '\[error\] .*' "$work/bad_$name.log")"
done
