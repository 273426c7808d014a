#!/usr/bin/env bash
# Runs N data-parallel ranks of coupling-train or coupling-analyze on this machine, without Python
# or torchrun:
#   scripts/launch.sh N gpt --out runs/dp [flags...]           (coupling-train gpt|vit ...)
#   scripts/launch.sh N analyze --hf step* --probe-ids F --log L (coupling-analyze ...)
# Each rank gets the variables torchrun would set (RANK, WORLD_SIZE, LOCAL_RANK,
# LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). MASTER_ADDR defaults to 127.0.0.1, MASTER_PORT to
# 29500 (export another to run two jobs at once). COUPLING_TRAIN and COUPLING_ANALYZE name the
# binaries (default: build/bin/coupling-train, build/bin/coupling-analyze). When a rank fails, the others get a moment to notice (they normally
# stop at once, naming the failure); any still running COUPLING_LAUNCH_GRACE seconds later
# (default 10) get SIGTERM, and SIGKILL as long again after that: a stopped (SIGSTOP) or hung rank
# cannot hold the job. The exit status is the first failing rank's, or 0.
set -uo pipefail
if [[ $# -lt 2 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N gpt|vit [coupling-train flags...] or $0 N analyze [coupling-analyze flags...]" \
    "(N = number of ranks, >= 1)" >&2
  exit 2
fi
ranks=$1
shift
bin_dir=$(cd "$(dirname "$0")/.." && pwd)/build/bin
if [[ $1 == analyze ]]; then
  shift
  binary=${COUPLING_ANALYZE:-$bin_dir/coupling-analyze} variable=COUPLING_ANALYZE
else
  binary=${COUPLING_TRAIN:-$bin_dir/coupling-train} variable=COUPLING_TRAIN
fi
if [[ ! -x $binary ]]; then
  echo "$binary not found: build first (scripts/build.sh) or set $variable" >&2
  exit 2
fi
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} MASTER_PORT=${MASTER_PORT:-29500} WORLD_SIZE=$ranks \
  LOCAL_WORLD_SIZE=$ranks

grace=${COUPLING_LAUNCH_GRACE:-10}
pids=()

# Waits up to $grace seconds for every rank to end; true when they all have.
all_ended_within_grace() {
  local deadline=$((SECONDS + grace)) pid alive
  while ((SECONDS <= deadline)); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || return 0
    sleep 0.5
  done
  return 1
}
for ((r = 0; r < ranks; r++)); do
  RANK=$r LOCAL_RANK=$r "$binary" "$@" &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' INT TERM

status=0
remaining=$ranks
while ((remaining > 0)); do
  wait -n
  code=$?
  remaining=$((remaining - 1))
  if ((code != 0 && status == 0)); then
    status=$code
    # Give the other ranks a moment to report the failure themselves, then stop them: SIGTERM,
    # then SIGKILL (a stopped rank never acts on SIGTERM).
    if ! all_ended_within_grace; then
      kill -TERM "${pids[@]}" 2>/dev/null
      if ! all_ended_within_grace; then
        echo "launch: ranks still running ${grace} s after SIGTERM: SIGKILL" >&2
        kill -KILL "${pids[@]}" 2>/dev/null
      fi
    fi
  fi
done
exit $status
