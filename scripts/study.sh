#!/usr/bin/env bash
# The coupling-vs-generalisation study (docs/study.md): trains a family of models (a grid over
# coupling-train's flags, GPT or ViT), each with the coupling callback, then correlates their
# held-out metric with time-resolved coupling, linearity and norm-growth predictors and with
# log(params), depth and width (scripts/study.py: study.csv, study_correlations.csv, study.h5,
# summaries/MEMBER.json; scripts/plot_study.py: study_curves.png and scatter plots).
#   scripts/study.sh [--grid FILE] [--out runs/study] [--steps N] [--jobs N] [--quick] [-- extra coupling-train flags]
# --grid FILE: the family, a TOML grid file (scripts/study_grid.py, docs/study.md); default
#   studies/default.toml (8 GPTs: width x depth x lr, 300 steps). --quick = --grid studies/quick.toml
#   (tiny GPTs on a tiny corpus: the test suite's end-to-end check).
# --steps N sets every member's steps (overriding the file's). --jobs members train at once, one
# intra-op thread each (default: the file's jobs, else 2). Re-running continues an interrupted
# study: finished members (summary.json) are kept, interrupted ones resume from their last
# checkpoint, the rest start again. Each member's output is in OUT/MEMBER.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=runs/study steps= jobs= grid= quick=0 extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --grid) grid=${2:?--grid needs a file}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --steps) steps=${2:?--steps needs a number}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --quick) quick=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "study.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
if ((quick)); then
  [[ -z $grid ]] || { echo "study.sh: --quick and --grid both given; --quick is --grid $root/studies/quick.toml" >&2; exit 2; }
  grid=$root/studies/quick.toml
fi
grid=${grid:-$root/studies/default.toml}
[[ -z $steps || $steps =~ ^[1-9][0-9]*$ ]] || { echo "study.sh: --steps $steps: give a positive integer" >&2; exit 2; }
[[ -z $jobs || $jobs =~ ^[1-9][0-9]*$ ]] || { echo "study.sh: --jobs $jobs: give a positive integer" >&2; exit 2; }
train=${COUPLING_TRAIN:-$root/build/bin/coupling-train}
[[ -x $train ]] || { echo "study.sh: $train not found: run scripts/build.sh first" >&2; exit 2; }
python=${COUPLING_PYTHON:-/usr/bin/python3}
# study.py reads the logs with coupling_log.tidy (pandas, xarray); a Python without them (the pip
# venv) still reads the grid and plots, and /usr/bin/python3 (Debian's packages) gathers.
gather=$python
if ! "$python" -c 'import pandas, xarray' 2> /dev/null && /usr/bin/python3 -c 'import pandas, xarray' 2> /dev/null; then
  gather=/usr/bin/python3
fi

# The grid: the model, and the name and flags of each member (longest first).
model=$("$python" "$root/scripts/study_grid.py" "$grid" --show model) || exit 2
jobs=${jobs:-$("$python" "$root/scripts/study_grid.py" "$grid" --show jobs)}
tiny=$("$python" "$root/scripts/study_grid.py" "$grid" --show tiny-corpus)
mkdir -p "$out"
out=$(cd "$out" && pwd)
member_lines=$("$python" "$root/scripts/study_grid.py" "$grid" --out "$out" --root "$root" --train "$train" \
  ${steps:+--steps "$steps"}) || exit 2
mapfile -t members <<< "$member_lines"
if [[ -f $out/grid.toml ]] && ! cmp -s "$grid" "$out/grid.toml"; then
  echo "study: $out/grid.toml differs from $grid: members with the same name are kept, as finished or resumed" >&2
fi
cp "$grid" "$out/grid.toml.new" && mv "$out/grid.toml.new" "$out/grid.toml"
if [[ -n $tiny ]]; then
  for i in $(seq 400); do echo "In the beginning God created the heaven and the earth."; done > "$out/$tiny"
fi

run_member() {
  local name=${1%%|*} flags=${1#*|} dir threads=1 i
  local -a args extra
  eval "args=($flags)"  # study_grid.py shell-quotes every value
  eval "extra=($extra_flags)"
  for ((i = 0; i + 1 < ${#args[@]}; i++)); do [[ ${args[i]} == --threads ]] && threads=${args[i + 1]}; done
  dir=$out/$name
  if [[ -f $dir/summary.json ]]; then echo "study: $name done earlier"; return 0; fi
  if [[ -d $dir/checkpoints ]] && ls "$dir/checkpoints" | grep -q '^step_[0-9]*$'; then
    echo "study: $name resumes"
    "$train" "$model" --resume "$dir" --threads "$threads" > "$dir.log" 2>&1
  else
    rm -rf "$dir"
    echo "study: $name starts"
    "$train" "$model" --out "$dir" "${args[@]}" "${extra[@]}" > "$dir.log" 2>&1
  fi || { echo "study: $name FAILED, see $dir.log" >&2; tail -3 "$dir.log" >&2; return 1; }
  echo "study: $name finished"
}
export -f run_member
export out train model
extra_flags=$(printf '%q ' "${extra[@]}")
[[ ${#extra[@]} -gt 0 ]] || extra_flags=
export extra_flags

echo "study: ${#members[@]} $model members from $grid, $jobs at a time, in $out"
start=$(date +%s)
status=0
printf '%s\n' "${members[@]}" | xargs -d '\n' -n 1 -P "$jobs" bash -c 'run_member "$1"' _ || status=$?
echo "study: ${#members[@]} members in $(( $(date +%s) - start )) s"
((status == 0)) || { echo "study: some members failed; re-run to continue" >&2; exit 1; }
[[ $gather == "$python" ]] || echo "study: $python lacks pandas or xarray; study.py runs in $gather"
"$gather" "$root/scripts/study.py" "$out"
"$python" "$root/scripts/plot_study.py" "$out"
