#!/usr/bin/env bash
# Builds the measurement engine alone (COUPLING_ENGINE_ONLY: no HDF5, c10d, trainer or examples)
# into build-engine/ against Debian's LibTorch 1.13 and runs its tests, so that the engine's
# independence from the other layers (docs/design.md) cannot rot. Needs scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B build-engine "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCOUPLING_ENGINE_ONLY=ON \
  -DCOUPLING_PYTHON=/usr/bin/python3 > build-engine.configure.log 2>&1 || { cat build-engine.configure.log; exit 1; }
rm -f build-engine.configure.log
cmake --build build-engine --parallel "${COUPLING_BUILD_JOBS:-$(nproc)}"
# The engine's sources and headers include nothing from the layers above it, nor HDF5 or c10d.
if grep -rnE '#include [<"](coupling/(log|dist|training)/|hdf5|torch/csrc/distributed)' \
     libcoupling/include/coupling/engine libcoupling/src/engine; then
  echo "test_engine_only: the engine includes a header of another layer (above)" >&2
  exit 1
fi
# No library layer above the engine may have been built.
if compgen -G "build-engine/lib/libcoupling_log.a" >/dev/null || compgen -G "build-engine/lib/libcoupling_dist.a" >/dev/null; then
  echo "test_engine_only: the engine-only build built other layers" >&2
  exit 1
fi
cd build-engine
ctest --output-on-failure --parallel "$(nproc)" "$@"
