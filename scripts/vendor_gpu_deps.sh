#!/usr/bin/env bash
# Prepares third_party/gpu-deps/ (git-ignored) for scripts/gpu_check.sh: a GPU machine may have
# PyTorch, CMake and ninja but none of HDF5, CLI11, spdlog, fmt or GoogleTest, and no package
# registry. Run this on a Debian 12 build machine; the folder then travels with the checkout.
# It holds Debian's packages unpacked (headers, CMake packages, libraries) and the shared
# libraries those load, copied from this machine (glibc, libstdc++ and libgcc excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
out=third_party/gpu-deps
packages=(
  libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libhdf5-cpp-103-1 libhdf5-hl-cpp-100 libsz2 libaec0 libaec-dev
  libspdlog-dev libspdlog1.1 libfmt-dev libfmt9 libcli11-dev libgtest-dev
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 777 "$work"  # apt-get download runs as _apt
(cd "$work" && apt-get download -q "${packages[@]}" >/dev/null)
rm -rf "$out"
mkdir -p "$out/root"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$out/root"; done
# What a build does not need: documentation, and HDF5's static libraries (10 MiB).
rm -rf "$out/root/usr/share/doc" "$out/root/usr/share/man" "$out/root/usr/share/lintian"
find "$out/root" -name '*.a' ! -name 'libgtest*' ! -name 'libgmock*' -delete
# The libraries that HDF5 (built with ROS3: curl, TLS, Kerberos, ...) and spdlog load.
libdir=$out/root/usr/lib/x86_64-linux-gnu
for library in "$libdir"/libhdf5_serial.so.103 "$libdir"/libhdf5_serial_hl.so.100 "$libdir"/libspdlog.so.1.10; do
  ldd "$library" | awk '$3 ~ /^\// {print $3}' | while read -r needed; do
    case $(basename "$needed") in
      libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|libresolv.so.*|ld-linux*|libstdc++.so.*|libgcc_s.so.*) ;;
      *) [[ -e $libdir/$(basename "$needed") ]] || cp -L "$needed" "$libdir/" ;;
    esac
  done
done
echo "vendor_gpu_deps: $out ($(du -sm "$out" | cut -f1) MiB, ${#packages[@]} Debian packages)"
