#!/usr/bin/env bash
# A pretrained model against its random init (docs/study.md). The paper (arXiv 2407.07810) reports
# that trained LLMs are more coupled (lower m_K) and have more linear trajectories than at init.
# This checks it on one real pretrained transformer, sentence-transformers/all-MiniLM-L6-v2
# (BERT, 6 blocks, d = 384), against 3 random inits of the same architecture made by
# transformers' own init, all measured the same way by coupling-analyze on the same probes.
#   scripts/minilm_study.sh [OUT_DIR]      (default: runs/minilm-study in the repository)
# Writes OUT_DIR/ids.txt (probe token ids), OUT_DIR/<model>.h5 (one log per model), the layer
# linearity logs OUT_DIR/<model>-linearity.h5 (32 probes) and prints the comparison table
# (scripts/minilm_study.py). Re-running continues: models, inits and logs that
# already exist are kept. COUPLING_PYTHON: a python with torch + transformers (default: the venv);
# COUPLING_THREADS: intra-op threads of coupling-analyze (default 2).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${COUPLING_PYTHON:-$root/.venv/bin/python}"
analyze="${COUPLING_ANALYZE:-$root/build/bin/coupling-analyze}"
threads="${COUPLING_THREADS:-2}"
out="${1:-$root/runs/minilm-study}"
[[ -x $analyze ]] || { echo "minilm_study: $analyze not found: run scripts/build.sh first" >&2; exit 2; }
[[ -x $python ]] || { echo "minilm_study: no python at $python: set COUPLING_PYTHON" >&2; exit 2; }
mkdir -p "$out"

pretrained="$root/models/all-minilm-l6-v2"
"$root/scripts/fetch_minilm.sh" "$pretrained"

# Random inits: transformers' own BertModel init (normal(0, initializer_range) for linear and
# embedding weights, zero biases, LayerNorm weight 1 / bias 0) on the pretrained config, float32.
# The check reads back what was saved, so a lazy/meta/skipped init cannot pass unnoticed.
models=(all-minilm-l6-v2)
for seed in 1 2 3; do models+=("all-minilm-l6-v2-init-seed$seed"); done
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$python" - "$pretrained" "$root/models" <<'EOF'
import os, sys
import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertModel

pretrained, models = sys.argv[1], sys.argv[2]
config = BertConfig.from_pretrained(pretrained)
reference = load_file(os.path.join(pretrained, "model.safetensors"))
query = "encoder.layer.0.attention.self.query.weight"
for seed in (1, 2, 3):
    target = os.path.join(models, f"all-minilm-l6-v2-init-seed{seed}")
    if not os.path.isfile(os.path.join(target, "model.safetensors")):
        torch.manual_seed(seed)
        BertModel(config).to(torch.float32).save_pretrained(target)
        print(f"minilm_study: init seed {seed} saved to {target}")
    w = load_file(os.path.join(target, "model.safetensors"))
    w = {n: t for n, t in w.items() if not n.endswith("position_ids")}  # an int buffer, not a weight
    problems = [n for n, t in w.items() if t.dtype != torch.float32 or not torch.isfinite(t).all()]
    problems += [n for n in reference if n.startswith(("embeddings.", "encoder.")) and n not in w
                 and not n.endswith("position_ids")]
    norms = {n: t for n, t in w.items() if "LayerNorm" in n}
    ln_ok = len(norms) == 2 * (1 + 2 * config.num_hidden_layers) and all(
        bool((t == (1.0 if n.endswith("weight") else 0.0)).all()) for n, t in norms.items())
    q_std = w[query].std().item()
    linear_stds = [t.std().item() for n, t in w.items() if n.startswith("encoder.") and n.endswith("dense.weight")]
    ok = (not problems and ln_ok and abs(q_std - config.initializer_range) < 0.002
          and all(abs(s - config.initializer_range) < 0.002 for s in linear_stds)
          and not torch.equal(w[query], reference[query]))
    print(f"minilm_study: init check seed {seed}: {len(w)} float32 tensors, query std {q_std:.5f} "
          f"(initializer_range {config.initializer_range}; pretrained {reference[query].std().item():.5f}), "
          f"dense std {min(linear_stds):.5f}..{max(linear_stds):.5f}, LayerNorm 1/0 {ln_ok}, "
          f"{'OK' if ok else 'FAILED ' + ' '.join(problems[:5])}")
    if not ok:
        sys.exit(1)
EOF

# Probes: the 16 verses with the model's tokenizer, [CLS] ... [SEP] on, cut to the shortest
# sentence (15 ids), so no probe has padding.
"$python" "$root/scripts/tokenize_probes.py" "$pretrained" "$root/probes/sentences.txt" > "$out/ids.txt"
length=$(head -1 "$out/ids.txt" | wc -w)

# Measured tokens: 4 positions spread evenly over 1..length-2 (1,5,9,13 for 15 ids). BERT is not
# causal, so the last token has no special role (unlike a GPT's, which sees the whole prompt);
# position 0 ([CLS]) is left out, and so is the last one, which is [SEP] for the shortest sentence
# and an ordinary word for the cut ones. Four positions keep the run to a few minutes.
tokens=$(for i in 0 1 2 3; do echo $((1 + i * (length - 3) / 3)); done | paste -sd,)
echo "minilm_study: $(wc -l < "$out/ids.txt") probes of $length tokens, measured tokens $tokens, $threads threads"

# K = 4 is 1% of d = 384 rounded up; 10, 30, 50 are the library's default grid.
for name in "${models[@]}"; do
  log="$out/$name.h5"
  if [[ -s $log ]]; then echo "minilm_study: $name measured earlier ($log)"; continue; fi
  start=$(date +%s)
  rm -f "$log.part"  # an interrupted log: measure afresh (coupling-analyze would continue it)
  "$analyze" --hf "$root/models/$name" --step 0 --probe-ids "$out/ids.txt" --log "$log.part" \
    --k 4,10,30,50 --tokens "$tokens" --threads "$threads"
  mv "$log.part" "$log"
  echo "minilm_study: $name measured in $(( $(date +%s) - start )) s"
done

# Layer linearity needs more probe tokens than d = 384 (docs/metrics.md section 4.1): 32 KJV
# verses (probes/verses-32.txt) cut to 15 ids give N = 480. One measured token (13) and K = 10
# keep it to seconds; the linearity uses every token's states whatever is measured.
"$python" "$root/scripts/tokenize_probes.py" "$pretrained" "$root/probes/verses-32.txt" --length 15 > "$out/ids-32.txt"
for name in "${models[@]}"; do
  log="$out/$name-linearity.h5"
  if [[ -s $log ]]; then echo "minilm_study: $name linearity measured earlier ($log)"; continue; fi
  rm -f "$log.part"
  "$analyze" --hf "$root/models/$name" --step 0 --probe-ids "$out/ids-32.txt" --log "$log.part" \
    --k 10 --tokens 13 --threads "$threads"
  mv "$log.part" "$log"
done

"$python" "$root/scripts/minilm_study.py" "$out"
