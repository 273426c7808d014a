#!/usr/bin/env bash
# Builds the library's unit tests (engine and library layers) with AddressSanitizer and
# UndefinedBehaviorSanitizer (COUPLING_SANITIZE: no recovery, so any finding fails) against
# Debian's LibTorch 1.13 into build-sanitize/, and runs them. The models layer's parsers
# (safetensors, config.json) run under the same sanitizers in fuzz/. LibTorch itself is not
# instrumented; no suppressions are needed today. Needs scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f build-sanitize/CMakeCache.txt ]]; then
  cmake -S . -B build-sanitize "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOUPLING_SANITIZE=ON \
    -DCOUPLING_USE_PCH=OFF -DCOUPLING_PYTHON=/usr/bin/python3 > /dev/null
fi
cmake --build build-sanitize --parallel "${COUPLING_BUILD_JOBS:-$(nproc)}" --target coupling_engine_tests coupling_library_tests
# Leaks are findings too; halt_on_error makes the first report fail the run.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for tests in coupling_engine_tests coupling_library_tests; do
  build-sanitize/bin/$tests --gtest_brief=1
done
echo "test_sanitized: engine and library tests clean under ASan + UBSan"
