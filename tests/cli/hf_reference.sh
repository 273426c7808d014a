#!/usr/bin/env bash
# Every Hugging Face family against transformers itself: tests/python/hf_reference.py makes tiny
# random models with transformers (float64, eager attention) and their hidden states and layer
# Jacobians; the HfReference gtest compares ours with them. Then coupling-analyze --hf measures
# the generated directories end to end: a step series from directory names, resumable, with the
# directories and probe ids in the log. Skipped (77) where COUPLING_PYTHON has no transformers.
# Usage: hf_reference.sh path/to/coupling_models_tests path/to/coupling-analyze
set -euo pipefail
tests=$1
analyze=$2
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

status=0
$python "$here/python/hf_reference.py" "$work/ref" > "$work/reference.log" 2>&1 || status=$?
if ((status == 77)); then cat "$work/reference.log"; exit 77; fi
((status == 0)) || { cat "$work/reference.log"; exit 1; }
COUPLING_HF_REFERENCE="$work/ref" "$tests" --gtest_filter='HfReference.*' > "$work/gtest.log" 2>&1 ||
  { cat "$work/gtest.log"; exit 1; }
grep -q "\[  PASSED  \] 1 test" "$work/gtest.log" || { cat "$work/gtest.log"; exit 1; }
grep -E "^[a-z0-9_]+ +states" "$work/gtest.log"
echo "ok   every family equals transformers ($(ls "$work/ref" | tr '\n' ' '))"

# A "training series" of two checkpoints named as Pythia's are, measured into one log.
mkdir "$work/series"
cp -r "$work/ref/neox_parallel" "$work/series/step1000"
cp -r "$work/ref/neox_parallel" "$work/series/step0"
printf '1 2 3 4 5 6\n7 8 9 10 11 12\n13 14 15 16 17 18\n' > "$work/ids.txt"
"$analyze" --hf "$work/series/step1000" --hf "$work/series/step0" --probe-ids "$work/ids.txt" --k 4 --tokens all \
  --threads 1 --log "$work/series.h5" > "$work/series.log" 2>&1 || { cat "$work/series.log"; exit 1; }
"$analyze" --hf "$work/series/step1000" --hf "$work/series/step0" --probe-ids "$work/ids.txt" --k 4 --tokens all \
  --threads 1 --log "$work/series.h5" > "$work/again.log" 2>&1 || { cat "$work/again.log"; exit 1; }
grep -q "0 model(s) measured, 2 already in the log" "$work/again.log" || { cat "$work/again.log"; exit 1; }
$python "$here/python/check_log.py" "$work/series.h5" 0,1000
$python - "$work/series.h5" "$work/series" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["model"] == "hf/gpt_neox", f.attrs["model"]
    assert "rotary_dims=2" in f.attrs["model_config"], f.attrs["model_config"]
    sources = f.attrs["model_sources"].splitlines()
    assert sources == [f"step 0: {sys.argv[2]}/step0", f"step 1000: {sys.argv[2]}/step1000"], sources
    assert f["probes"][:].tolist()[1] == [7, 8, 9, 10, 11, 12]
    m = f["measurement"]
    # The two steps hold the same weights: identical measurements.
    assert (m["depth_coupling"][0] == m["depth_coupling"][1]).all()
PY
echo "ok   a step series from directory names, resumed, with sources and probe ids in the log"

expect_error() {
  local name=$1 message=$2
  shift 2
  local status=0
  "$analyze" "$@" --threads 1 > "$work/$name.log" 2>&1 || status=$?
  if [[ $status -ne 2 ]] || ! grep -Eq "\[error\] .*$message" "$work/$name.log"; then
    echo "FAIL $name (status $status)"; cat "$work/$name.log"; exit 1
  fi
  echo "ok   $name: $(grep -o '\[error\] .*' "$work/$name.log" | cut -c9-160)"
}
expect_error no_ids "--hf needs --probe-ids FILE" --hf "$work/ref/gpt2" --log "$work/e1.h5"
expect_error no_step "cannot tell the step of --hf .*/ref/gpt2: name the directories" --hf "$work/ref/gpt2" \
  --hf "$work/ref/gpt2_sharded" --probe-ids "$work/ids.txt" --log "$work/e2.h5"
cp -r "$work/ref/bert" "$work/series/step5"
expect_error other_model "holds another architecture than" --hf "$work/series/step0" --hf "$work/series/step5" \
  --probe-ids "$work/ids.txt" --log "$work/e3.h5"
printf '1 2 3\n4 5\n' > "$work/ragged.txt"
expect_error ragged "line 2: 2 token ids, but the first probe has 3" --hf "$work/ref/gpt2" --probe-ids "$work/ragged.txt" \
  --log "$work/e4.h5"
printf '1 2 3 64\n' > "$work/oov.txt"
expect_error out_of_vocabulary "a probe token id is outside \[0, 64\)" --hf "$work/ref/gpt2" --probe-ids "$work/oov.txt" \
  --log "$work/e5.h5"
expect_error probe_text_with_hf "--probe-text does not apply to --hf" --hf "$work/ref/gpt2" --probe-ids "$work/ids.txt" \
  --probe-text "$work/ids.txt" --log "$work/e6.h5"
expect_error negative_step "--step -1 is negative" --hf "$work/ref/gpt2" --step=-1 --probe-ids "$work/ids.txt" \
  --log "$work/e7.h5"
expect_error k_above_d "K = 40 is larger than the model.s width d = 32" --hf "$work/ref/gpt2" --k 40 --probe-ids "$work/ids.txt" --log "$work/e8.h5"
cp -r "$work/ref/gpt2" "$work/incomplete"
$python - "$work/incomplete/model.safetensors" <<'PY'
import sys
from safetensors.torch import load_file, save_file
tensors = load_file(sys.argv[1])
del tensors["transformer.h.1.mlp.c_proj.bias"]
save_file(tensors, sys.argv[1])
PY
expect_error missing_tensor "lacks tensor transformer.h.1.mlp.c_proj.bias" --hf "$work/incomplete" \
  --probe-ids "$work/ids.txt" --log "$work/e9.h5"
for i in 1 2 3 4 5 6 7 8 9; do [[ ! -e "$work/e$i.h5" ]] || { echo "FAIL e$i.h5 was written"; exit 1; }; done
echo "ok   bad inputs exit 2 in one line and write no log"
