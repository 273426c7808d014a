#!/usr/bin/env bash
# Idempotent machine setup for libcoupling on Debian 12 (run as root, or with sudo available).
# Installs the toolchain, LibTorch and the other libraries, the Python plotting stack and the
# data packages, then prepares the corpora under data/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libgloo-dev libopenblas0-openmp
  libhdf5-dev hdf5-tools libcli11-dev libspdlog-dev libgtest-dev
  python3-torch python3-h5py python3-matplotlib python3-scipy
  bible-kjv bible-kjv-text dataset-fashion-mnist
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

scripts/prepare_data.sh
