#!/usr/bin/env bash
# Packaging: `cmake --install` the build, configure and build examples/custom_trainer as a
# separate project with find_package(coupling), run it, and check its log with h5py; build
# examples/custom_model with find_package(coupling COMPONENTS engine) while HDF5, nlohmann_json
# and OpenSSL cannot be found, and run it; the installed tools run from the prefix (--version)
# and the installed scripts read the log.
# Usage: install_package.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
source=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/cmake/coupling/couplingConfig.cmake"
test -f "$work/prefix/include/coupling/training/coupling_callback.h"
for tool in coupling-train coupling-analyze; do
  "$work/prefix/bin/$tool" --version | grep -q "^libcoupling " || { echo "installed $tool --version failed"; exit 1; }
done
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S "$source/examples/custom_trainer" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" > "$work/build.log" || { cat "$work/build.log"; exit 1; }
"$work/build/custom_trainer" "$work/log.h5" 40
"${COUPLING_PYTHON:-/usr/bin/python3}" "$source/tests/python/check_log.py" "$work/log.h5" 0,20,40 --train-rows 40
cmake -S "$source/examples/custom_model" -B "$work/build-engine" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_DISABLE_FIND_PACKAGE_HDF5=ON -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON \
  -DCMAKE_DISABLE_FIND_PACKAGE_OpenSSL=ON > "$work/configure-engine.log" || { cat "$work/configure-engine.log"; exit 1; }
cmake --build "$work/build-engine" > "$work/build-engine.log" || { cat "$work/build-engine.log"; exit 1; }
"$work/build-engine/custom_model" | grep -q "mean off-diagonal m_K" || { echo "engine-only custom_model failed"; exit 1; }
(cd "$work" && "$work/prefix/bin/coupling_log.py" --csv "$work/log.h5" > "$work/table.csv")
test "$(wc -l < "$work/table.csv")" -eq 4 || { echo "installed coupling_log.py: expected a header and 3 rows"; exit 1; }
echo "1 passed, 0 failed"
