#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ (clang 14 with ASan + UBSan, into build-fuzz/) and runs
# each: first the inputs that once crashed it (fuzz/regressions/NAME/), then SECONDS of fuzzing
# from its committed seed corpus (fuzz/corpus/NAME/; new inputs go to a temporary directory).
# A crash stops with the harness's status; its input is kept under build-fuzz/artifacts/.
#   scripts/fuzz.sh [SECONDS [NAME...]]     (default: 40 s each, every harness)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-40}
shift || true
names=("$@")
if ((${#names[@]} == 0)); then names=(safetensors config hf_config probe_ids idx launcher_env schedule log_resume); fi
build=build-fuzz
if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOUPLING_FUZZ=ON
fi
start=$SECONDS
cmake --build "$build" --parallel "${COUPLING_BUILD_JOBS:-$(nproc)}" --target "${names[@]/#/fuzz_}"
echo "fuzz: built ${#names[@]} harnesses in $((SECONDS - start)) s"
mkdir -p "$build/artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for name in "${names[@]}"; do
  binary=$build/bin/fuzz_$name
  if compgen -G "fuzz/regressions/$name/*" > /dev/null; then
    "$binary" fuzz/regressions/$name/* > "$work/$name.regressions.log" 2>&1 ||
      { tail -30 "$work/$name.regressions.log"; echo "fuzz: $name fails a regression input"; exit 1; }
  fi
  mkdir -p "$work/$name"
  status=0
  "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$name-" "$work/$name" "fuzz/corpus/$name" > "$work/$name.log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$name.log" | grep -o '[0-9]*$' || echo "?")
  if ((status != 0)); then
    tail -40 "$work/$name.log"
    echo "fuzz: $name FAILED after $runs runs; the input is in $build/artifacts/"
    exit "$status"
  fi
  echo "fuzz: $name ok: $runs runs in $seconds s, corpus $(ls "fuzz/corpus/$name" | wc -l) seeds + $(ls "$work/$name" | wc -l) new"
done
