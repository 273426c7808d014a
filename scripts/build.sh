#!/usr/bin/env bash
# Configures and builds libcoupling (Release). Extra arguments go to cmake --build.
#   scripts/build.sh               Debian's LibTorch 1.13 (CPU) into build/
#   scripts/build.sh --torch pip   LibTorch 2.x with CUDA and NCCL from .venv/ into build-torch2/
#                                  (scripts/setup.sh --torch pip makes the venv)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_choice.sh
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  # COUPLING_WERROR=ON (CI) makes any compiler warning an error.
  configure=(-DCMAKE_BUILD_TYPE=Release "-DCOUPLING_PYTHON=$coupling_python" "-DCOUPLING_WERROR=${COUPLING_WERROR:-OFF}")
  if [[ $torch_flavour == pip ]]; then
    if [[ ! -x $coupling_python ]]; then
      echo "build: $venv_dir not found: run scripts/setup.sh --torch pip first" >&2
      exit 2
    fi
    # The wheel's CMake package (cmake/CouplingTorch.cmake: what differs from Debian's).
    configure+=("-DCMAKE_PREFIX_PATH=$("$coupling_python" -c 'import torch; print(torch.utils.cmake_prefix_path)')")
  fi
  cmake -S . -B "$build_dir" "${generator[@]}" "${configure[@]}"
fi
cmake --build "$build_dir" --parallel "${COUPLING_BUILD_JOBS:-$(nproc)}" "$@"
