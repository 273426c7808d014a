#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), builds (scripts/build.sh) and runs the whole test suite.
#   scripts/test.sh [ctest args]               against Debian's LibTorch 1.13 (build/)
#   scripts/test.sh --torch pip [ctest args]   against LibTorch 2.x with CUDA (.venv/, build-torch2/);
#                                              the tests' Python side runs in the venv too
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_choice.sh
scripts/setup.sh --torch "$torch_flavour"
scripts/build.sh --torch "$torch_flavour"
cd "$build_dir"
ctest --output-on-failure --parallel "$(nproc)" "$@"
