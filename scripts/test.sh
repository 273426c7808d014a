#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), builds (scripts/build.sh) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure --parallel "$(nproc)" "$@"
