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

two_ranks r 10000
if [[ $s0 -eq 0 && $s1 -eq 0 ]] && grep -q "rank 0 ok" "$work/r0.log" && grep -q "rank 1 ok" "$work/r1.log"; then
  echo "ok   two ranks: all-reduce, broadcast, all-gather, barrier"
else
  echo "FAIL two ranks"; cat "$work"/r*.log; failures=$((failures + 1))
fi

port=$((port + 1))
two_ranks m 10000 measure
if [[ $s0 -eq 0 && $s1 -eq 0 ]] && grep -q "rank 0 measure ok" "$work/m0.log" && grep -q "rank 1 measure ok" "$work/m1.log"; then
  echo "ok   measurement shared by 2 ranks equals the single-process one"
else
  echo "FAIL shared measurement"; cat "$work"/m*.log; failures=$((failures + 1))
fi

port=$((port + 1))
two_ranks g 10000 data-parallel
if [[ $s0 -eq 0 && $s1 -eq 0 ]] && grep -q "rank 0 data-parallel ok" "$work/g0.log" && grep -q "rank 1 data-parallel ok" "$work/g1.log"; then
  echo "ok   gradients averaged in 3 buckets; the checksum names a drifted rank on every rank"
else
  echo "FAIL data-parallel helpers"; cat "$work"/g*.log; failures=$((failures + 1))
fi

port=$((port + 1))
two_ranks u 10000 user-group
if [[ $s0 -eq 0 && $s1 -eq 0 ]] && grep -q "rank 0 ok" "$work/u0.log" && grep -q "rank 1 ok" "$work/u1.log"; then
  echo "ok   collectives through the user's own ProcessGroupGloo"
else
  echo "FAIL user process group"; cat "$work"/u*.log; failures=$((failures + 1))
fi

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
/usr/bin/python3 -c "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', $port)); s.listen(); time.sleep(30)" &
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
