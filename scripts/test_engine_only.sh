#!/usr/bin/env bash
# Builds the measurement engine and the models layer alone (COUPLING_ENGINE_ONLY: no HDF5, c10d,
# trainer or examples) into build-engine/ against Debian's LibTorch 1.13 and runs their tests, so
# that their independence from the other layers (docs/design.md) cannot rot. Needs
# scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B build-engine "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCOUPLING_ENGINE_ONLY=ON \
  "-DCOUPLING_WERROR=${COUPLING_WERROR:-OFF}" \
  -DCOUPLING_PYTHON=/usr/bin/python3 > build-engine.configure.log 2>&1 || { cat build-engine.configure.log; exit 1; }
rm -f build-engine.configure.log
cmake --build build-engine --parallel "${COUPLING_BUILD_JOBS:-$(nproc)}"
# Which layer may include which: the test layers.include_direction checks every layer's includes
# (tests/cli/layer_includes.sh); here the build itself proves the engine and models need nothing else.
# No library layer above the models may have been built.
for layer in coupling_log coupling_dist coupling coupling_trainer; do
  if [[ -e build-engine/lib/lib$layer.a ]]; then
    echo "test_engine_only: the engine-only build built $layer" >&2
    exit 1
  fi
done
cd build-engine
ctest --output-on-failure --parallel "$(nproc)" "$@"
