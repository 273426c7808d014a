#!/usr/bin/env bash
# Communicator with real processes on 127.0.0.1: 2 ranks run every collective, share a
# measurement (equal to the single-process one), average gradients in buckets and catch a
# drifted rank, and work through a process group of the program's own; a rank that dies
# makes the survivor's collective fail with a message naming it; a rank that never arrives times
# out with a clear message; a port already in use is reported.
# Usage: communicator.sh path/to/dist_worker
set -uo pipefail
worker=$1
work=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
port=$(( 20000 + RANDOM % 20000 ))
failures=0
export MASTER_ADDR=127.0.0.1 WORLD_SIZE=2

# two_ranks TAG TIMEOUT_MS [MODE]: runs ranks 0 and 1 on $port, logs in $work/TAG{0,1}.log,
# exit statuses in s0 and s1.
two_ranks() {
  local tag=$1
  shift
  MASTER_PORT=$port RANK=0 timeout 60 "$worker" "$@" > "$work/${tag}0.log" 2>&1 &
  local p0=$!
  MASTER_PORT=$port RANK=1 timeout 60 "$worker" "$@" > "$work/${tag}1.log" 2>&1
  s1=$?
  wait $p0
  s0=$?
}

# both_succeed TAG MODE DESCRIPTION: ranks 0 and 1 run MODE (empty: every collective) and each
# prints "rank R [MODE ]ok".
both_succeed() {
  local tag=$1 mode=$2 description=$3
  port=$((port + 1))
  two_ranks "$tag" 10000 $mode
  local done="${mode:+$mode }ok"
  if [[ $s0 -eq 0 && $s1 -eq 0 ]] && grep -q "rank 0 $done" "$work/${tag}0.log" && grep -q "rank 1 $done" "$work/${tag}1.log"; then
    echo "ok   $description"
  else
    echo "FAIL $description"; cat "$work/$tag"*.log; failures=$((failures + 1))
  fi
}

both_succeed r "" "two ranks: all-reduce, broadcast, all-gather, barrier"
both_succeed m measure "measurement shared by 2 ranks equals the single-process one"
both_succeed g data-parallel "gradients averaged in 3 buckets; the checksum names a drifted rank on every rank"
both_succeed u user-group "collectives through the user's own ProcessGroupGloo"

port=$((port + 1))
two_ranks d 5000 peer-exits
if [[ $s0 -eq 2 ]] && grep -q "all-reduce of a test vector failed on rank 0 of 2" "$work/d0.log"; then
  echo "ok   peer died: $(grep -o 'all-reduce of a test vector failed on rank 0 of 2 ([a-z]*)' "$work/d0.log")"
else
  echo "FAIL peer died (status $s0)"; cat "$work"/d*.log; failures=$((failures + 1))
fi

port=$((port + 1))
start=$(date +%s)
MASTER_PORT=$port RANK=0 timeout 60 "$worker" 2000 > "$work/alone.log" 2>&1
status=$?
if [[ $status -eq 2 ]] && grep -q "rendezvous at 127.0.0.1:$port failed for rank 0 of 2" "$work/alone.log" \
   && (( $(date +%s) - start < 30 )); then
  echo "ok   missing rank: $(grep -o 'rendezvous at .* of 2' "$work/alone.log")"
else
  echo "FAIL missing rank (status $status)"; cat "$work/alone.log"; failures=$((failures + 1))
fi

port=$((port + 1))
"${COUPLING_PYTHON:-/usr/bin/python3}" -c "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', $port)); s.listen(); time.sleep(30)" &
sleep 0.5
MASTER_PORT=$port RANK=0 timeout 60 "$worker" 2000 > "$work/busy.log" 2>&1
status=$?
if [[ $status -eq 2 ]] && grep -q "rendezvous at 127.0.0.1:$port failed" "$work/busy.log"; then
  echo "ok   port in use: $(grep -o 'errno: 98[^)]*' "$work/busy.log" | head -1)"
else
  echo "FAIL port in use (status $status)"; cat "$work/busy.log"; failures=$((failures + 1))
fi
echo "$((7 - failures)) passed, $failures failed"
[[ $failures -eq 0 ]]
