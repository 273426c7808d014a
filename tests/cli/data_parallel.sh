#!/usr/bin/env bash
# Data-parallel coupling-train with real processes on 127.0.0.1 (a port of its own per case):
#  1. 2 ranks (each half of the global batch) train like 1 rank with the full batch: same losses,
#     weights and coupling measurements; only rank 0 writes (rank 1 runs in another directory
#     with the same relative --out, which must stay empty); the log records world_size 2.
#  2. SIGKILL of rank 1 mid-training: rank 0 exits non-zero (3) within --dist-timeout naming the
#     failed collective; the coupling log stays readable with every completed measurement;
#     --resume on 2 ranks (scripts/launch.sh) completes the run; 1 rank cannot resume it.
#  3. Bad launches, each a clear error on every rank: configs differing in --layers, a rank that
#     never arrives (after one --dist-timeout), MASTER_PORT in use by a running job; a running
#     single-node job listens on loopback only (/proc/net/tcp).
#  4. torchrun --no_python (1.13 spelling; 2.x takes it too) launches it (when torchrun is installed).
# Usage: data_parallel.sh path/to/coupling-train
set -uo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
launch="$here/../scripts/launch.sh"
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
for i in $(seq 600); do echo "Blessed are the meek: for they shall inherit the earth."; done > "$work/tiny.txt"
tiny=(gpt --data "$work/tiny.txt" --d-model 16 --layers 2 --heads 2 --context 16 --batch 8 --eval-windows 8
      --probes 3 --k 4,8 --threads 1 --dist-timeout 10)
source "$here/cli/two_ranks.sh"

# 1. Equivalence and rank-0-only writing.
mkdir -p "$work/one" "$work/r0" "$work/r1"
short=("${tiny[@]}" --steps 8 --ckpt-every 4 --eval-every 4 --measure-schedule every:4 --out run)
(cd "$work/one" && timeout 120 "$bin" "${short[@]}") > "$work/one.log" 2>&1
rank 0 "$work/r0" "$work/eq0.log" "${short[@]}"; p0=$!
rank 1 "$work/r1" "$work/eq1.log" "${short[@]}"; p1=$!
wait $p0; s0=$?; wait $p1; s1=$?
if [[ $s0 -ne 0 || $s1 -ne 0 ]]; then
  fail "2-rank run (statuses $s0 $s1)" "$work/one.log" "$work/eq0.log" "$work/eq1.log"
elif result=$($python "$here/python/compare_runs.py" "$work/one/run" "$work/r0/run" 2 2>&1); then
  echo "ok   2 ranks = 1 rank with the full batch: $result"
else
  fail "2 ranks differ from 1 rank: $result"
fi
if [[ -z $(ls -A "$work/r1") ]] && grep -q '"world_size": 2' "$work/r0/run/summary.json"; then
  echo "ok   only rank 0 wrote files"
else
  fail "rank 1 wrote files: $(find "$work/r1" | head)"
fi

# 2. SIGKILL of rank 1, then resume.
port=$((port + 1))
long=("${tiny[@]}" --steps 3000 --ckpt-every 100 --eval-every 500 --measure-schedule every:100 --out "$work/killed")
rank 0 "$work" "$work/k0.log" "${long[@]}"; p0=$!
rank 1 "$work" "$work/k1.log" "${long[@]}"; p1=$!
for _ in $(seq 600); do [[ -d $work/killed/checkpoints/step_300 ]] && break; sleep 0.1; done
kill_rank1 $p0 $p1 "$work/k0.log" 15
measured=$($python -c "
import h5py; f = h5py.File('$work/killed/coupling.h5', 'r', swmr=True); s = f['measurement/step'][:]
assert list(s) == list(range(0, 100 * len(s), 100)) and len(s) >= 4, s; print(len(s))" 2>&1)
if [[ $? -eq 0 ]]; then
  echo "ok   the log is readable after the kill: $measured measurements (steps 0, 100, ...)"
else
  fail "log after the kill: $measured"
fi
MASTER_PORT=$((port + 50)) WORLD_SIZE=1 timeout 60 "$bin" "${tiny[@]}" --resume "$work/killed" > "$work/one_rank.log" 2>&1
s=$?
if [[ $s -eq 2 ]] && grep -q "written by a job of 2 rank(s); resume it with 2" "$work/one_rank.log"; then
  echo "ok   1 rank refuses to resume a 2-rank run"
else
  fail "1-rank resume of a 2-rank run (status $s)" "$work/one_rank.log"
fi
port=$((port + 1))
COUPLING_TRAIN=$bin MASTER_PORT=$port timeout 300 "$launch" 2 "${tiny[@]}" --resume "$work/killed" > "$work/resume.log" 2>&1
s=$?
if [[ $s -eq 0 ]] && $python "$here/python/check_log.py" "$work/killed/coupling.h5" \
     "$(seq -s, 0 100 3000)" --train-rows 3000 > "$work/check.log" 2>&1; then
  echo "ok   --resume on 2 ranks completed the run: gapless log of 31 measurements and 3000 rows"
else
  fail "2-rank resume (status $s)" "$work/resume.log" "$work/check.log"
fi

# 3. Bad launches.
port=$((port + 1))
rank 0 "$work" "$work/m0.log" "${tiny[@]}" --steps 4 --out "$work/mismatch"; p0=$!
rank 1 "$work" "$work/m1.log" "${tiny[@]}" --steps 4 --out "$work/mismatch" --layers 3; p1=$!
wait $p0; s0=$?; wait $p1; s1=$?
if [[ $s0 -eq 2 && $s1 -eq 2 ]] && grep -q "rank 1: layers differ from rank 0" "$work/m0.log" \
   && grep -q "rank 1: layers differ from rank 0" "$work/m1.log" && [[ ! -e $work/mismatch ]]; then
  echo "ok   mismatched --layers: both ranks exit 2 naming 'layers'"
else
  fail "mismatched configs (statuses $s0 $s1)" "$work/m0.log" "$work/m1.log"
fi
port=$((port + 1))
# A rank that never arrives fails the other after one --dist-timeout (5 s; two would be 10 s and
# more), whichever rank is missing.
for present in 0 1; do
  start=$(date +%s)
  MASTER_PORT=$port RANK=$present timeout 60 "$bin" "${tiny[@]}" --steps 4 --out "$work/alone$present" --dist-timeout 5 \
    > "$work/alone$present.log" 2>&1
  s=$? took=$(( $(date +%s) - start ))
  if [[ $s -eq 3 ]] && grep -q "rendezvous at 127.0.0.1:$port failed for rank $present of 2" "$work/alone$present.log" \
     && (( took < 9 )); then
    echo "ok   rank $((1 - present)) never arrives: rank $present exits 3 after $took s, 'rendezvous ... failed'"
  else
    fail "rank $((1 - present)) missing (status $s after $took s)" "$work/alone$present.log"
  fi
  port=$((port + 1))
done
port=$((port + 1))
# A running single-node job listens on loopback only (its store is a file, Gloo binds 127.0.0.1),
# and a second job on its MASTER_PORT is refused.
(COUPLING_TRAIN=$bin MASTER_PORT=$port timeout 120 "$launch" 2 "${tiny[@]}" --steps 100000 --out "$work/busy" \
   > "$work/busy.log" 2>&1) &
ranks=()
for _ in $(seq 600); do
  mapfile -t ranks < <(pgrep -f -- "^$bin .*--out $work/busy")
  [[ ${#ranks[@]} -eq 2 && -s $work/busy/train_log.csv ]] && break  # training is under way
  sleep 0.1
done
# The local address (hex, as /proc/net/tcp writes it) of every TCP socket the ranks listen on.
inodes=$(for p in "${ranks[@]}"; do ls -l "/proc/$p/fd" 2>/dev/null; done | grep -o 'socket:\[[0-9]*\]' | tr -c '0-9' ' ')
listening=$(awk -v inodes="$inodes" 'BEGIN { n = split(inodes, list, " "); for (i = 1; i <= n; i++) want[list[i]] = 1 }
  FNR > 1 && $4 == "0A" && ($10 in want) { print $2 }' /proc/net/tcp /proc/net/tcp6)
exposed=$(grep -Ev '^(0100007F|00000000000000000000000001000000):' <<< "$listening" | grep . )
if [[ ${#ranks[@]} -eq 2 && -z $exposed ]]; then
  echo "ok   a single-node job listens on loopback only ($(grep -c . <<< "$listening") listening sockets, none beyond 127.0.0.1)"
else
  fail "listening sockets of a single-node job (ranks: ${ranks[*]}; beyond loopback: ${exposed:-none}; all: $(echo $listening))" "$work/busy.log"
fi
MASTER_PORT=$port RANK=0 timeout 60 "$bin" "${tiny[@]}" --steps 4 --out "$work/second" --dist-timeout 3 > "$work/second.log" 2>&1
s=$?
if [[ $s -eq 3 ]] && grep -Eq "MASTER_PORT $port is in use by another job on this machine \(its rank 0 is process ($(IFS='|'; echo "${ranks[*]}"))\)" "$work/second.log"; then
  echo "ok   MASTER_PORT in use: exit 3, $(grep -o 'MASTER_PORT [0-9]* is in use[^:]*' "$work/second.log")"
else
  fail "port in use (status $s)" "$work/second.log"
fi
kill -TERM "${ranks[@]}" 2>/dev/null
port=$((port + 1))
# A stopped rank (SIGSTOP) cannot hold a launch: rank 0 times out, launch.sh escalates to SIGKILL.
(COUPLING_TRAIN=$bin MASTER_PORT=$port COUPLING_LAUNCH_GRACE=2 timeout 120 "$launch" 2 "${tiny[@]}" --steps 100000 \
   --out "$work/stopped" --dist-timeout 5 > "$work/stopped.log" 2>&1; echo $? > "$work/stopped.status") &
launcher=$!
victim=
for _ in $(seq 600); do
  for p in $(pgrep -f -- "--out $work/stopped"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx RANK=1 && victim=$p
  done
  [[ -n $victim && -s $work/stopped/train_log.csv ]] && break  # training is under way
  sleep 0.1
done
start=$(date +%s)
kill -STOP "$victim"
wait $launcher
s=$(cat "$work/stopped.status")
if [[ -n $victim && $s -ne 0 && $s -ne 124 ]] && ! kill -0 "$victim" 2>/dev/null && grep -q "SIGKILL" "$work/stopped.log"; then
  echo "ok   a stopped rank: launch.sh exits $s after $(( $(date +%s) - start )) s (SIGTERM, then SIGKILL)"
else
  kill -KILL "$victim" 2>/dev/null
  fail "stopped rank (launch status $s, victim '$victim')" "$work/stopped.log"
fi

# 4. torchrun.
if "$python" -c "import torch.distributed.run" 2> /dev/null; then  # torchrun of the tests' torch
  port=$((port + 1))
  (unset RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE MASTER_ADDR
   # --redirects 1 --tee 1: Debian's torchrun 1.13 on Python 3.11 fails with its default "0".
   timeout 120 "$python" -m torch.distributed.run --nproc_per_node=2 --master_port=$port --redirects 1 --tee 1 --no_python "$bin" "${tiny[@]}" --steps 4 \
     --out "$work/torchrun") > "$work/torchrun.log" 2>&1
  s=$?
  if [[ $s -eq 0 ]] && grep -q '"world_size": 2' "$work/torchrun/summary.json"; then
    echo "ok   torchrun --nproc_per_node=2 --no_python coupling-train"
  else
    fail "torchrun (status $s)" "$work/torchrun.log"
  fi
else
  echo "skip torchrun: not installed"
fi
echo "$failures failed"
[[ $failures -eq 0 ]]
