#!/usr/bin/env bash
# --device (and measure_gpt's --spectrum) on the other binaries: a bad value or an unavailable
# CUDA device exits 2 with one error line; scripts/gpu_check.sh without a GPU says so in one line
# and exits 0, and with a Python that has no torch exits 2. Run with CUDA_VISIBLE_DEVICES empty.
# Usage: device_flags.sh BIN_DIR SOURCE_DIR
set -uo pipefail
bin=$1 source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0 passed=0

# expect NAME STATUS REGEX COMMAND...: the exit status, and REGEX in exactly one line of output.
expect() {
  local name=$1 status=$2 regex=$3
  shift 3
  "$@" > "$work/$name.log" 2>&1
  local s=$?
  if [[ $s -eq $status && $(grep -Ec -- "$regex" "$work/$name.log") -eq 1 ]]; then
    echo "ok   $name: $(grep -E -- "$regex" "$work/$name.log" | sed 's/.*\] //')"
    passed=$((passed + 1))
  else
    echo "FAIL $name: status $s (expected $status), expected one line matching /$regex/"
    cat "$work/$name.log"
    failures=$((failures + 1))
  fi
}

cuda_error="--device cuda: (this LibTorch \\(.*\\) was built without CUDA|no CUDA device is visible)"
expect analyze_bad 2 "--device 'tpu' is not a device" "$bin/coupling-analyze" --checkpoints "$work" --device tpu
expect analyze_cuda 2 "$cuda_error" "$bin/coupling-analyze" --checkpoints "$work" --device cuda
expect measure_bad 2 "--device 'cuda:x': the device index must be a non-negative integer" \
  "$bin/measure_gpt" "$work" --device cuda:x
expect measure_spectrum 2 "--spectrum: svd not in \\{auto,exact,randomized\\}" \
  "$bin/measure_gpt" "$work" --spectrum svd
expect bench_cuda 2 "$cuda_error" "$bin/coupling-bench" --quick --device cuda
if [[ -e $work/checkpoints || -e $work/analysis.h5 ]]; then
  echo "FAIL a refused command wrote into $work"; failures=$((failures + 1))
fi
expect gpu_check_no_gpu 0 "^gpu_check: no CUDA GPU visible" \
  env COUPLING_GPU_PYTHON="${COUPLING_PYTHON:-/usr/bin/python3}" "$source/scripts/gpu_check.sh"
expect gpu_check_no_torch 2 "cannot import torch" env COUPLING_GPU_PYTHON=/bin/false "$source/scripts/gpu_check.sh"
echo "$passed passed, $failures failed"
[[ $failures -eq 0 ]]
