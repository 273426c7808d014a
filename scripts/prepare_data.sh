#!/usr/bin/env bash
# Prepares the bundled corpora under data/ (git-ignored): the King James Bible as plain text
# (decoded from Debian's bible-kjv-text with the `bible` program) and Fashion-MNIST as
# gunzipped IDX files. Idempotent: existing, complete files are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data

kjv=data/kjv.txt
if [[ ! -s $kjv ]]; then
  command -v bible >/dev/null || { echo "prepare_data: 'bible' not found: run scripts/setup.sh" >&2; exit 1; }
  bible -l100000 "gen1:1-rev22:21" > "$kjv.tmp"
  mv "$kjv.tmp" "$kjv"
fi
echo "prepare_data: $kjv ($(stat -c %s "$kjv") bytes)"

fm_src=/usr/share/datasets/fashion-mnist
fm_dst=data/fashion-mnist
if [[ -d $fm_src ]]; then
  mkdir -p "$fm_dst"
  for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [[ ! -s $fm_dst/$f ]]; then
      gunzip -c "$fm_src/$f.gz" > "$fm_dst/$f.tmp"
      mv "$fm_dst/$f.tmp" "$fm_dst/$f"
    fi
  done
  echo "prepare_data: $fm_dst (Fashion-MNIST IDX)"
fi
