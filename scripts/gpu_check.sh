#!/usr/bin/env bash
# The GPU check (docs/install.md): one command for a machine with a CUDA GPU and a PyTorch 2.x
# python3, run in a checkout that carries third_party/gpu-deps/ (scripts/vendor_gpu_deps.sh) and,
# ideally, data/kjv.txt. Without a GPU it says so in one line and exits 0. Otherwise it checks
# that TF32 is off, builds against that python's LibTorch, runs the Device* tests (the CUDA ones
# included), trains the default GPT for 300 steps on cuda with measurements (and reports their
# overhead), compares CPU and CUDA measurements of the run's step 0 and last checkpoint (exact
# spectra, fp32: 1e-4), compares CPU and CUDA on a small model of every Hugging Face family
# (transformers' own tiny models, exact spectra: 1e-4), times both Jacobian paths on the
# GPT-2-small, Pythia-1.4B and Llama-3-8B shapes on cuda (bench/jacobian_paths.py; each shape
# within what is left of COUPLING_GPU_SECONDS, default 540), runs a 2-rank NCCL job against 1 rank
# when there are 2+ GPUs, and prints one summary table. Exit status: 0 when every check passed.
# Everything it writes goes under build-gpu/, $COUPLING_GPU_SCRATCH (default /tmp/coupling-gpu)
# and $OUT (or build-gpu/check).
set -uo pipefail
cd "$(dirname "$0")/.."
python=${COUPLING_GPU_PYTHON:-python3}
if ! gpus=$("$python" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null); then
  echo "gpu_check: $python cannot import torch: name a Python with PyTorch 2.x in COUPLING_GPU_PYTHON" >&2
  exit 2
fi
if [[ ! $gpus =~ ^[0-9]+$ || $gpus -eq 0 ]]; then
  echo "gpu_check: no CUDA GPU visible to $python's torch here: nothing to check"
  exit 0
fi
start=$SECONDS
deps=$PWD/third_party/gpu-deps/root/usr
out=${OUT:-$PWD/build-gpu/check}
rm -rf "$out"
mkdir -p "$out"
results=()
failed=0
record() {  # record CHECK RESULT DETAIL
  results+=("$(printf '%-34s %-6s %s' "$1" "$2" "$3")")
  [[ $2 == pass || $2 == skip ]] || failed=1
}
summary() {
  echo
  echo "== gpu_check summary ($(nvidia-smi -L 2>/dev/null | head -1 || echo "$gpus GPU(s)"), $((SECONDS - start)) s)"
  printf '%-34s %-6s %s\n' check result detail
  printf '%s\n' "${results[@]}"
  exit "$failed"
}

# 0. TF32 stays off for measurements: LibTorch's default, which a TF32 GEMM would break at 1e-3.
if "$python" -c "import torch; assert not torch.backends.cuda.matmul.allow_tf32" 2>/dev/null; then
  record "TF32 off (cuBLAS default)" pass "torch.backends.cuda.matmul.allow_tf32 is False"
else
  record "TF32 off (cuBLAS default)" FAIL "TF32 matmuls are on: measurements would not be fp32"
fi

# 1. Build against this python's LibTorch, with the vendored libraries where the system has none.
torch_prefix=$("$python" -c "import torch; print(torch.utils.cmake_prefix_path)")
torch_version=$("$python" -c "import torch; print(torch.__version__)")
# Tests are listed when ctest runs, not by running the test binary during the build.
configure=(-DCMAKE_BUILD_TYPE=Release "-DCOUPLING_PYTHON=$(command -v "$python")" -DCOUPLING_USE_CCACHE=OFF
           -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST)
with_deps=()  # how the built binaries run: with the vendored libraries (not CMake or the compiler)
if [[ -d $deps ]]; then
  with_deps=(env "LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  configure+=("-DCMAKE_PREFIX_PATH=$torch_prefix;$deps" "-DHDF5_ROOT=$deps/lib/x86_64-linux-gnu/hdf5/serial")
else
  configure+=("-DCMAKE_PREFIX_PATH=$torch_prefix")
fi
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
build_start=$SECONDS
if cmake -S . -B build-gpu "${generator[@]}" "${configure[@]}" >"$out/configure.log" 2>&1 &&
   cmake --build build-gpu --parallel "$(nproc)" --target coupling_trainer_tests coupling-train coupling-analyze \
     coupling-bench measure_gpt \
     >"$out/build.log" 2>&1; then
  record "build (LibTorch $torch_version)" pass "$((SECONDS - build_start)) s"
else
  tail -30 "$out/configure.log" "$out/build.log"
  record "build (LibTorch $torch_version)" FAIL "see $out/configure.log, $out/build.log"
  summary
fi
bin=$PWD/build-gpu/bin

# 2. The device tests, CUDA ones included (skipped ones would mean no device was seen).
"${with_deps[@]}" "$bin/coupling_trainer_tests" --gtest_filter='Device*' >"$out/device_tests.log" 2>&1
status=$?
passed=$(grep -c '^\[       OK \]' "$out/device_tests.log")
skipped=$(grep -c '^\[  SKIPPED \] .*ms)$' "$out/device_tests.log")
if [[ $status -eq 0 && $(grep -c '^\[  SKIPPED \] DeviceCuda' "$out/device_tests.log") -eq 0 ]]; then
  record "Device* tests" pass "$passed passed, $skipped skipped (expected: the no-GPU error test)"
else
  record "Device* tests" FAIL "status $status, $passed passed; see $out/device_tests.log"
fi

# 3. The default GPT for 300 steps on cuda, measured (exact spectra).
data=data/kjv.txt
if [[ ! -s $data ]]; then  # no corpus carried: the repository's own text
  data=$out/corpus.txt
  cat README.md docs/*.md libcoupling/include/coupling/*.h trainer/src/*.cpp >"$data"
fi
"${with_deps[@]}" "$bin/coupling-train" gpt --data "$data" --device cuda --steps 300 --spectrum exact --out "$out/run" \
  >"$out/train.log" 2>&1
status=$?
if [[ $status -eq 0 && -f $out/run/summary.json ]]; then
  record "train 300 steps on cuda" pass "$(grep -o '"tokens_per_second": [0-9.]*' "$out/run/summary.json"), $(grep -o '"val_loss": [0-9.]*' "$out/run/summary.json"), $(grep -o '"overhead_fraction": [0-9.eE+-]*' "$out/run/summary.json")"
else
  record "train 300 steps on cuda" FAIL "status $status; see $out/train.log"
fi

# 4. CPU vs CUDA: the run's step 0 (initialised on the CPU, then moved) and its last checkpoint.
if [[ -d $out/run/checkpoints ]]; then
  for device in cpu cuda; do
    "${with_deps[@]}" "$bin/measure_gpt" "$out/run" 8 --device "$device" --spectrum exact >"$out/measure_$device.txt" 2>"$out/measure_$device.log"
  done
  # Every metric row (not the timings): max |cpu - cuda| per column; a non-finite value fails.
  metric_rows() { grep -E '^[^ ].* +-?([0-9.]+|nan|inf) +-?([0-9.]+|nan|inf)$' "$1" | grep -v -e seconds -e '^metric'; }
  differences=$(paste <(metric_rows "$out/measure_cpu.txt") <(metric_rows "$out/measure_cuda.txt") |
    awk -F'\t' '{n = split($1, a, " +"); split($2, b, " +"); for (c = 0; c < 2; ++c) {
                  x = a[n - 1 + c]; y = b[n - 1 + c]; if (x !~ /^-?[0-9.]+$/ || y !~ /^-?[0-9.]+$/) { m[c] = 1e30; continue }
                  d = x - y; if (d < 0) d = -d; if (d > m[c]) m[c] = d } rows++ }
                END { printf "%d %.2e %.2e", rows, m[0], m[1] }')
  read -r rows step0 last <<<"$differences"
  if [[ ${rows:-0} -gt 0 ]] && awk -v a="$step0" -v b="$last" 'BEGIN { exit !(a <= 1e-4 && b <= 1e-4) }'; then
    record "CPU vs CUDA measurements" pass "$rows metrics: max |diff| step 0 $step0, last $last"
  else
    record "CPU vs CUDA measurements" FAIL "$rows metrics: max |diff| step 0 ${step0:-?}, last ${last:-?} (bound 1e-4)"
  fi
else
  record "CPU vs CUDA measurements" FAIL "no checkpoints to measure"
fi

# 5. Every Hugging Face family, CPU vs CUDA, exact spectra: transformers' own tiny models.
scratch=${COUPLING_GPU_SCRATCH:-/tmp/coupling-gpu}
mkdir -p "$scratch"
if "$python" tests/python/hf_reference.py "$scratch/families" >"$out/families.log" 2>&1; then
  worst=0 cases=0 family_failed=""
  for case in "$scratch"/families/*/; do
    name=$(basename "$case")
    vocab=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$case/config.json")
    "$python" -c "import random,sys; r = random.Random(3); [print(' '.join(str(r.randrange(int(sys.argv[1]))) for _ in range(8))) for _ in range(2)]" \
      "$vocab" >"$scratch/$name.ids"
    for device in cpu cuda; do
      "${with_deps[@]}" "$bin/coupling-analyze" --hf "$case" --probe-ids "$scratch/$name.ids" --k 4,8 --tokens all \
        --spectrum exact --device "$device" --log "$scratch/$name.$device.h5" >"$out/family_$name.$device.log" 2>&1 ||
        family_failed+=" $name/$device"
    done
    if agreement=$("$python" tests/python/compare_logs.py "$scratch/$name.cpu.h5" "$scratch/$name.cuda.h5" 0 \
                   --every-field-scale 1e-4 2>>"$out/families.log"); then
      cases=$((cases + 1))
    else
      family_failed+=" $name"
    fi
  done
  if [[ -z $family_failed && $cases -gt 0 ]]; then
    record "HF families: CPU vs CUDA (exact)" pass "$cases models agree to 1e-4 of each field's scale"
  else
    record "HF families: CPU vs CUDA (exact)" FAIL "differ or failed:$family_failed; see $out/family_*.log"
  fi
else
  record "HF families: CPU vs CUDA (exact)" FAIL "hf_reference.py failed; see $out/families.log"
fi

# 6. Both Jacobian paths on cuda: the GPT-2-small, Pythia-1.4B and Llama-3-8B shapes, one probe
# of 128 tokens each, within the time left (the goal: Llama-3-8B in at most 2 s per probe).
budget=${COUPLING_GPU_SECONDS:-540}
for shape in gpt2-small pythia-1.4b llama-3-8b; do
  left=$((budget - (SECONDS - start)))
  if ((left < 60)); then
    record "paths on cuda: $shape" skip "$left s left of $budget"
    continue
  fi
  if timeout "$left" "${with_deps[@]}" "$python" bench/jacobian_paths.py --bin "$bin" --device cuda "$shape" \
       --scratch "$scratch" --json-out "$out/paths_$shape.json" >"$out/paths_$shape.log" 2>&1; then
    record "paths on cuda: $shape" pass "$(grep -E "^$shape " "$out/paths_$shape.log" |
      awk '{printf "%s%s %s s/probe", (n++ ? ", " : ""), $2, $4}')"
  else
    record "paths on cuda: $shape" FAIL "status $?; see $out/paths_$shape.log"
  fi
done

# 7. Two ranks on NCCL against one rank, same global batch.
if ((gpus >= 2)); then
  tiny=(gpt --data "$data" --device cuda --d-model 64 --layers 2 --heads 2 --context 64 --batch 16 --steps 50
        --eval-windows 32 --log none)
  "${with_deps[@]}" "$bin/coupling-train" "${tiny[@]}" --out "$out/one" >"$out/one.log" 2>&1
  COUPLING_TRAIN=$bin/coupling-train MASTER_PORT=${MASTER_PORT:-29650} "${with_deps[@]}" scripts/launch.sh 2 "${tiny[@]}" \
    --backend nccl --out "$out/two" >"$out/two.log" 2>&1
  status=$?
  loss() { grep -o '"val_loss": [0-9.eE+-]*' "$1/summary.json" 2>/dev/null | awk '{print $2}'; }
  a=$(loss "$out/one") b=$(loss "$out/two")
  if [[ $status -eq 0 && -n $a && -n $b ]] && awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-3 * a) }'; then
    record "2 ranks (NCCL) vs 1 rank" pass "val_loss $a vs $b"
  else
    record "2 ranks (NCCL) vs 1 rank" FAIL "status $status, val_loss ${a:-?} vs ${b:-?}; see $out/two.log"
  fi
else
  record "2 ranks (NCCL) vs 1 rank" skip "one GPU"
fi
summary
