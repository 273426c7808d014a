#!/usr/bin/env bash
# The coupling-vs-generalisation study (docs/study.md): trains a family of small GPTs on the KJV
# corpus (a config grid over width, depth and learning rate), each with the coupling callback,
# then correlates their held-out loss with their final coupling, linearity and norm growth and
# with log(params), depth and width (scripts/study.py: study.csv, study.h5, scatter plots).
#   scripts/study.sh [--out runs/study] [--steps 300] [--jobs 2] [--quick] [-- extra coupling-train flags]
# --jobs members train at once, one intra-op thread each. Re-running continues an interrupted
# study: finished members are kept, interrupted ones resume from their last checkpoint.
# --quick: a tiny family on a tiny corpus (the test suite's end-to-end check).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=runs/study steps=300 jobs=2 quick=0 extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "study.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
train=${COUPLING_TRAIN:-$root/build/bin/coupling-train}
[[ -x $train ]] || { echo "study.sh: $train not found: run scripts/build.sh first" >&2; exit 2; }
mkdir -p "$out"

# The grid: name and flags of each member.
members=()
if ((quick)); then
  for i in $(seq 400); do echo "In the beginning God created the heaven and the earth."; done > "$out/tiny.txt"
  for d in 16 32; do for l in 1 2; do for lr in 0.003 0.01; do
    members+=("d${d}_l${l}_lr${lr}|--data $out/tiny.txt --d-model $d --layers $l --heads 2 --lr $lr --context 16 --batch 8 --eval-windows 16 --probes 3 --k 4,8")
  done; done; done
else
  for d in 64 128; do for l in 2 4; do for lr in 0.001 0.003; do
    members+=("d${d}_l${l}_lr${lr}|--d-model $d --layers $l --heads 4 --lr $lr")
  done; done; done
fi

run_member() {
  local name=$1 flags=$2 dir=$out/$1
  if [[ -f $dir/summary.json ]]; then echo "study: $name done earlier"; return 0; fi
  if [[ -d $dir/checkpoints ]] && ls "$dir/checkpoints" | grep -q '^step_[0-9]*$'; then
    echo "study: $name resumes"
    "$train" gpt --resume "$dir" --threads 1 > "$dir.log" 2>&1
  else
    rm -rf "$dir"
    echo "study: $name starts"
    # shellcheck disable=SC2086
    "$train" gpt --out "$dir" --steps "$steps" --ckpt-every $((steps / 4 > 0 ? steps / 4 : 1)) --threads 1 \
      --eval-every 0 --log-every 100 $flags "${extra[@]}" > "$dir.log" 2>&1
  fi || { echo "study: $name FAILED, see $dir.log" >&2; tail -3 "$dir.log" >&2; return 1; }
  echo "study: $name finished"
}
export -f run_member
export out steps train
export extra_flags="${extra[*]:-}"

start=$(date +%s)
status=0
printf '%s\n' "${members[@]}" | xargs -P "$jobs" -I{} bash -c 'IFS="|" read -r name flags <<< "{}"; extra=($extra_flags); run_member "$name" "$flags"' || status=$?
echo "study: ${#members[@]} members in $(( $(date +%s) - start )) s"
((status == 0)) || { echo "study: some members failed; re-run to continue" >&2; exit 1; }
"${COUPLING_PYTHON:-/usr/bin/python3}" "$root/scripts/study.py" "$out"
"${COUPLING_PYTHON:-/usr/bin/python3}" "$root/scripts/plot_study.py" "$out"
