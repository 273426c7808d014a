#!/usr/bin/env bash
# The two supported LibTorch builds side by side on the same CPU cases (docs/performance.md):
# coupling-bench of build/ (Debian's 1.13, OpenBLAS) and of build-torch2/ (PyPI's 2.x, MKL),
# run one after the other in this one invocation with the same arguments, then one table of
# seconds and the ratio 2.x / 1.13 per case (below 1: LibTorch 2.x is faster).
# Usage: bench/libtorch_versions.sh [coupling-bench args]   (default: --quick --repeats 3 --skip-python)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
args=("$@")
((${#args[@]} > 0)) || args=(--quick --repeats 3 --skip-python)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for build in build build-torch2; do
  [[ -x $root/$build/bin/coupling-bench ]] || { echo "$build/bin/coupling-bench not found: scripts/build.sh${build#build}" >&2; exit 2; }
  echo "== $build"
  "$root/$build/bin/coupling-bench" "${args[@]}" --device cpu --json "$work/$build.json"
done
/usr/bin/python3 - "$work/build.json" "$work/build-torch2.json" <<'PY'
import json, sys
def cases(path):
    rows = json.load(open(path))
    out = {}
    for r in rows:
        c = r["case"]
        if c == "machine":
            out["machine"] = r
        elif c == "jacobian":
            out[f"jacobian d={r['d']} T={r['T']} {r['method']}"] = r["seconds"]
        elif c == "measurement":
            out[f"measurement {r['layers']}x{r['d']} T={r['T']} {r['spectrum']}"] = r["total_seconds"]
        elif c == "spectra":
            out[f"randomized top-50 p={r['oversample']} q={r['power_iterations']}"] = r["seconds"]
        elif c == "training_overhead":
            out[f"training {r['steps']} steps, plain"] = r["plain_seconds"]
            out[f"training {r['steps']} steps, instrumented"] = r["instrumented_seconds"]
        elif c == "step_time":
            out["training step (C++)"] = r.get("cpp_seconds", r.get("seconds"))
    return out
old, new = cases(sys.argv[1]), cases(sys.argv[2])
print()
print(f"LibTorch {old['machine'].get('libtorch', '?')} (sgemm {old['machine']['sgemm_gflops']:.0f} GFLOP/s) vs "
      f"{new['machine'].get('libtorch', '?')} (sgemm {new['machine']['sgemm_gflops']:.0f} GFLOP/s), "
      f"{old['machine']['threads']} threads, CPU")
print(f"{'case':<48} {'1.13 s':>9} {'2.x s':>9} {'2.x/1.13':>9}")
for name, seconds in old.items():
    if name == "machine" or name not in new or not seconds:
        continue
    print(f"{name:<48} {seconds:>9.4f} {new[name]:>9.4f} {new[name] / seconds:>9.2f}")
PY
