#!/usr/bin/env bash
# Idempotent machine setup for libcoupling on Debian 12 (run as root, or with sudo available).
# Installs the toolchain, LibTorch and the other libraries, the Python plotting stack and the
# data packages, then prepares the corpora under data/ (git-ignored).
#   scripts/setup.sh --torch pip   also creates .venv/ (git-ignored) with LibTorch 2.x + CUDA and
#                                  the tests' Python packages from PyPI, pinned with hashes in
#                                  scripts/requirements-torch2.txt (about 3 GB of wheels), and
#                                  installs the Python package python/ (`coupling`) into it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_choice.sh

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libgloo-dev libopenblas0-openmp
  libhdf5-dev hdf5-tools libcli11-dev libspdlog-dev libgtest-dev
  nlohmann-json3-dev libtomlplusplus-dev libssl-dev zlib1g-dev clang-14 libclang-rt-14-dev clang-format-14
  python3-torch python3-h5py python3-matplotlib python3-scipy python3-venv python3-dev
  python3-pandas python3-xarray python3-h5netcdf python3-pytest
  bible-kjv bible-kjv-text dataset-fashion-mnist
  iproute2 util-linux
)

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} > 0 )); then
  echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

if [[ $torch_flavour == pip ]]; then
  # Debian's python3 makes the venv; nothing from Debian's Python packages is visible inside it.
  # A changed requirements-torch2.txt is installed into the existing venv: pip fetches only the
  # packages whose pinned version it lacks (a package dropped from the file stays installed).
  stamp=$venv_dir/.requirements.sha256
  wanted=$(sha256sum scripts/requirements-torch2.txt | cut -d' ' -f1)
  if [[ ! -x $venv_dir/bin/python ]]; then
    echo "setup: creating $venv_dir (LibTorch 2.x with CUDA; about 3 GB from PyPI)"
    rm -rf "$venv_dir"
    /usr/bin/python3 -m venv "$venv_dir"
  fi
  if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
    echo "setup: installing scripts/requirements-torch2.txt into $venv_dir"
    "$venv_dir/bin/pip" install -q --no-input --require-hashes --no-deps -r scripts/requirements-torch2.txt
    echo "$wanted" >"$stamp"
  fi
  # The Python package, editable (the venv runs the checkout's python/coupling; coupling-plot, ...
  # in .venv/bin). Pure Python: built offline with the venv's pinned setuptools, nothing compiled.
  if ! "$venv_dir/bin/python" -I -c 'import coupling.log' 2>/dev/null; then
    echo "setup: installing the Python package python/ into $venv_dir"
    "$venv_dir/bin/pip" install -q --no-input --no-index --no-build-isolation --no-deps -e ./python
  fi
  echo "setup: $venv_dir has torch $("$venv_dir/bin/python" -c 'import torch; print(torch.__version__)')"
fi

scripts/prepare_data.sh
