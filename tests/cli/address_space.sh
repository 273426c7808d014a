#!/usr/bin/env bash
# Memory exhaustion inside the process: under an address-space limit (ulimit -v) an allocation
# fails in-process (under overcommit, real exhaustion is the OOM killer's SIGKILL, which the
# kill tests cover). A GPT run whose allocation fails
#  1. in a measurement (the step-0 one: 8 probes x every token), and
#  2. in a training step (a batch of 256 beside a 1-probe measurement),
# ends with one "[error] out of memory: LibTorch could not allocate ..." line and exit status 1;
# then --resume, without the limit, completes the run and its log holds every step once, in
# whole rows (check_log.py: shapes and row checksums). Each limit is set between the address-space
# peaks (VmPeak) of two unlimited runs measured first: one without the part that fails, one with.
# Not under the sanitizers: ulimit -v counts ASan's shadow memory too.
# Usage: address_space.sh path/to/coupling-train
set -uo pipefail
train=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
for i in $(seq 600); do echo "In the beginning God created the heaven and the earth."; done > tiny.txt
base=(gpt --data tiny.txt --layers 2 --heads 2 --context 64 --threads 1 --eval-windows 4 --steps 3 --ckpt-every 1
      --k 4)
failures=0

# vm_peak ARGS...: the run's peak address space (VmPeak, KiB), sampled while it runs.
vm_peak() {
  "$train" "${base[@]}" "$@" > peak.log 2>&1 &
  local pid=$! peak=0 now
  while kill -0 "$pid" 2> /dev/null; do
    now=$(awk '/^VmPeak/ {print $2}' "/proc/$pid/status" 2> /dev/null)
    [[ -n $now ]] && peak=$now
    sleep 0.01
  done
  wait "$pid" || { echo "FAIL an unlimited run failed: $*" >&2; cat peak.log >&2; exit 1; }
  echo "$peak"
}

# exhaust NAME "WITHOUT ARGS" "WITH ARGS" STEPS: the run of WITH ARGS under a limit halfway between
# the peaks of both (its log must then hold the measurement steps STEPS, whole), then resumed
# without it.
exhaust() {
  local name=$1 without=($2) with=($3) steps=$4 low high limit status errors
  rm -rf low high
  low=$(vm_peak "${without[@]}" --out low) high=$(vm_peak "${with[@]}" --out high)
  if ((high - low < 65536)); then
    echo "FAIL $name: the failing part adds only $(( (high - low) / 1024 )) MiB of address space: no room for a limit"
    failures=$((failures + 1)); return
  fi
  limit=$(( (low + high) / 2 ))
  (ulimit -v "$limit" && exec "$train" "${base[@]}" "${with[@]}" --out "$name") > "$name.log" 2>&1
  status=$?
  errors=$(grep -c "\[error\]" "$name.log")
  if [[ $status -ne 1 || $errors -ne 1 ]] || ! grep -q "\[error\] out of memory: LibTorch could not allocate" "$name.log"; then
    echo "FAIL $name: under ulimit -v $limit KiB the run must end with one out-of-memory line and status 1 (status $status, $errors error lines)"
    tail -5 "$name.log"; failures=$((failures + 1)); return
  fi
  if ! "$python" "$here/python/check_log.py" "$name/coupling.h5" "$steps" > "$name-check.log" 2>&1; then
    echo "FAIL $name: after the failure the log must hold the whole rows of steps '$steps'"; cat "$name-check.log"
    failures=$((failures + 1)); return
  fi
  echo "ok   $name under ulimit -v $((limit / 1024)) MiB (peaks $((low / 1024)) without, $((high / 1024)) with): status 1, log rows '$steps', $(grep -o '\[error\] .*' "$name.log" | cut -c9-110)"
  if ! "$train" gpt --resume "$name" > "$name-resumed.log" 2>&1 ||
    ! "$python" "$here/python/check_log.py" "$name/coupling.h5" 0,1,2,3 > "$name-check.log" 2>&1; then
    echo "FAIL $name: --resume without the limit"; tail -5 "$name-resumed.log" "$name-check.log"
    failures=$((failures + 1)); return
  fi
  echo "ok   $name: --resume completed the run: $(cat "$name-check.log")"
}

# The measurement's Jacobians (8 probes x 64 tokens x 2 blocks of d = 128) need the room.
exhaust in_measurement "--d-model 128 --batch 2 --log none" \
  "--d-model 128 --batch 2 --probes 8 --tokens all --measure-schedule every:1" ""
# A batch of 256 needs the room; the measurement is one probe's last token.
exhaust in_training "--d-model 32 --batch 2 --probes 1 --measure-schedule every:1" \
  "--d-model 32 --batch 256 --probes 1 --measure-schedule every:1" 0
exit $((failures > 0))
