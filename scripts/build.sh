#!/usr/bin/env bash
# Configures and builds libcoupling (Release) into build/. Extra arguments go to cmake --build.
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build --parallel "${COUPLING_BUILD_JOBS:-$(nproc)}" "$@"
