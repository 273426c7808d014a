#!/usr/bin/env bash
# coupling-train end to end through the CLI: a tiny run, its outputs (summary.json keys,
# config.toml that repeats the run, model.safetensors readable by Python with the
# documented names), and --resume continuing to more steps is refused while a consistent
# resume of a finished run re-creates the summary.
# Usage: train_resume.sh path/to/coupling-train
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python=${COUPLING_PYTHON:-/usr/bin/python3}

for i in $(seq 550); do echo "In the beginning God created the heaven and the earth."; done > "$work/tiny.txt"
args=(--data "$work/tiny.txt" --d-model 16 --layers 2 --heads 2 --context 16 --batch 4 --threads 1
      --eval-windows 8 --steps 6 --ckpt-every 3 --eval-every 3 --log-every 3)
"$bin" gpt "${args[@]}" --out "$work/a"

for key in final_step train_loss val_loss bigram_val_loss tokens_per_second wall_seconds; do
  grep -q "\"$key\"" "$work/a/summary.json" || { echo "summary.json lacks $key"; exit 1; }
done
test -d "$work/a/checkpoints/step_3" && test -d "$work/a/checkpoints/step_6"

# The saved config repeats the run exactly (same loss curve).
sed "s|^out = .*|out = \"$work/b\"|" "$work/a/config.toml" > "$work/b.toml"
"$bin" gpt --config="$work/b.toml"
cmp <(cut -d, -f1-2 "$work/a/train_log.csv") <(cut -d, -f1-2 "$work/b/train_log.csv")

# Python reads model.safetensors as a dict with the documented names (numpy alone; with the
# safetensors package, the same as safetensors.torch.load_file, which the venv's Python checks).
$python - "$work/a/checkpoints/step_6/model.safetensors" "$(dirname "$0")/../../scripts" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import coupling_safetensors
w = coupling_safetensors.load_torch(sys.argv[1])
try:
    import safetensors.torch
    reference = safetensors.torch.load_file(sys.argv[1])
    assert reference.keys() == w.keys() and all((reference[k] == w[k]).all() for k in w)
    print("the safetensors package reads model.safetensors the same")
except ImportError:
    pass
expected = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"}
for l in range(2):
    for s in ["ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
              "ln2.weight", "ln2.bias", "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias"]:
        expected.add(f"blocks.{l}.{s}")
assert set(w.keys()) == expected, sorted(set(w.keys()) ^ expected)
assert tuple(w["blocks.0.attn.qkv.weight"].shape) == (48, 16)
print("model.safetensors keys ok:", len(w))
PY

# Resume after an interruption at step 3 reproduces the loss curve.
cp -r "$work/a" "$work/c"
rm -rf "$work/c/checkpoints/step_6" "$work/c/summary.json"
"$bin" gpt --resume "$work/c" --log-every 1
cmp <(cut -d, -f1-2 "$work/a/train_log.csv") <(cut -d, -f1-2 "$work/c/train_log.csv")
echo "1 passed, 0 failed"
