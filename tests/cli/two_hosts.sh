#!/usr/bin/env bash
# A data-parallel coupling-train job on two "hosts": two network namespaces that this test creates
# (and always removes), joined by a veth pair on a random private /24, one rank in each. MASTER_ADDR
# is host A's veth address, not a loopback one, so the multi-node path runs (env.cpp single_node()
# is false): rank 0 hosts a c10d::TCPStore on MASTER_PORT and Gloo's pairs cross the veth. Each rank
# runs in its own UTS namespace whose hostname is its own address, as on a cluster whose host names
# resolve to the nodes' private addresses (createDefaultDevice binds the hostname's address), and
# with GLOO_SOCKET_IFNAME naming its veth.
#  1. The job trains and measures a tiny GPT; its coupling log equals the same job's on one host (2
#     ranks on loopback, FileStore) to 1e-5 per element, its losses are the same; it used the
#     TCPStore (no FileStore in its rendezvous directory; rank 0 listens on MASTER_PORT, rank 1 and
#     the Gloo pairs connect over the veth, checked with ss while it runs).
#  2. The link is cut (host B's veth down) mid-training: both ranks exit 3 within --dist-timeout +
#     30 s, and the coupling log keeps whole rows (check_log.py: steps, shapes, row_crc32).
#  3. Host B's rank is SIGKILLed mid-training: host A's rank exits 3 within --dist-timeout + 30 s.
#  4. A process outside the job (in host B's namespace) sends 4 KiB of random bytes to the store's
#     port, once during the rendezvous and once during training: the job either completes with the
#     reference log or fails cleanly (non-zero, an [error] line); nothing hangs. Says which.
#  5. GLOO_SOCKET_IFNAME picks Gloo's interface even where the hostname resolves to loopback (as it
#     does inside a bare namespace: here the hostname is "localhost"): the job completes.
# Needs root, ip (iproute2) with netns, unshare and ss: otherwise "SKIP: reason" and exit 77 (a
# skip for ctest), or a failure (exit 1) when COUPLING_REQUIRE_NETNS=1 (.ci/run sets it). Every process runs under timeout.
# Usage: two_hosts.sh path/to/coupling-train
set -uo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-/usr/bin/python3}
began=$(date +%s)

skip() {
  if [[ ${COUPLING_REQUIRE_NETNS:-0} == 1 ]]; then
    echo "FAIL network namespaces are required (COUPLING_REQUIRE_NETNS=1): $1"
    exit 1
  fi
  echo "SKIP: $1"
  exit 77
}
[[ $(id -u) -eq 0 ]] || skip "needs root to create network namespaces"
for tool in ip unshare ss; do command -v $tool > /dev/null || skip "$tool is not installed"; done

work=$(mktemp -d)
ns=("coupling-a-$$" "coupling-b-$$")
veth=("cpl-a-$$" "cpl-b-$$")
subnet=10.$((RANDOM % 256)).$((RANDOM % 256))
addr=("$subnet.1" "$subnet.2")
cleanup() {
  local n p
  {
    for n in "${ns[@]}"; do  # the job's processes are the ones in our namespaces
      for p in $(ip netns pids "$n"); do kill -9 "$p"; done
    done
    kill -9 $(jobs -p)
    wait
    for n in "${ns[@]}"; do ip netns del "$n"; done  # takes the veth pair with it
  } 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
if ! { ip netns add "${ns[0]}" && ip netns add "${ns[1]}"; } 2> "$work/netns.log"; then
  skip "cannot create network namespaces: $(head -1 "$work/netns.log")"
fi
# link HOST: host HOST's end of the veth pair in its namespace, with its address; loopback up.
link() {
  ip link set "${veth[$1]}" netns "${ns[$1]}" && ip -n "${ns[$1]}" addr add "${addr[$1]}/24" dev "${veth[$1]}" &&
    ip -n "${ns[$1]}" link set lo up && ip -n "${ns[$1]}" link set "${veth[$1]}" up
}
if ! { ip link add "${veth[0]}" type veth peer name "${veth[1]}" && link 0 && link 1; } 2> "$work/veth.log"; then
  skip "cannot set up a veth pair between the namespaces: $(head -1 "$work/veth.log")"
fi

port=$((20000 + RANDOM % 20000))
failures=0
fail() { echo "FAIL $1"; shift; for f in "$@"; do echo "--- $f"; tail -20 "$f"; done; failures=$((failures + 1)); }
now() { date +%s%3N; }  # milliseconds
seconds() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
mkdir -m 700 "$work/rdv" "$work/rdv-ref"  # private rendezvous directories: the FileStore path would write here

for i in $(seq 600); do echo "Blessed are the meek: for they shall inherit the earth."; done > "$work/tiny.txt"
timeout=10
tiny=(gpt --data "$work/tiny.txt" --d-model 16 --layers 2 --heads 2 --context 16 --batch 8 --eval-windows 8
      --probes 3 --k 4,8 --threads 1)
short=("${tiny[@]}" --dist-timeout $timeout --steps 200 --ckpt-every 100 --eval-every 100 --measure-schedule every:50 --out run)
long=("${tiny[@]}" --dist-timeout $timeout --steps 100000 --ckpt-every 100 --eval-every 0 --measure-schedule every:50 --out run)

# start CASE R HOST MASTER HOSTNAME ARGS...: rank R of a 2-rank job in host HOST's namespace (0 = A,
# 1 = B) under a 60 s timeout, in the background, in $work/CASE.R/ with the hostname HOSTNAME and, on
# two hosts (MASTER host A's address), GLOO_SOCKET_IFNAME naming the host's veth; writes
# $work/CASE.R.log and, when it ends, "STATUS END_MS" to $work/CASE.R.end.
start() {
  local case=$1 r=$2 h=$3 master=$4 name=$5 local_rank=0 local_size=1 rendezvous=$work/rdv
  local ifname=(GLOO_SOCKET_IFNAME="${veth[h]}")
  shift 5
  [[ $master == "${addr[0]}" ]] || local_rank=$r local_size=2 rendezvous=$work/rdv-ref ifname=()  # one host
  mkdir -p "$work/$case.$r"
  (cd "$work/$case.$r" &&
     timeout -k 5 60 ip netns exec "${ns[h]}" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$name" \
       env -u TORCHELASTIC_USE_AGENT_STORE -u GLOO_SOCKET_IFNAME RANK=$r WORLD_SIZE=2 LOCAL_RANK=$local_rank \
       LOCAL_WORLD_SIZE=$local_size MASTER_ADDR="$master" MASTER_PORT=$port COUPLING_RENDEZVOUS_DIR="$rendezvous" \
       "${ifname[@]}" "$bin" "$@" > "$work/$case.$r.log" 2>&1
   echo "$? $(now)" > "$work/$case.$r.end") 2>> "$work/$case.$r.log" &
}
# two_hosts CASE ARGS...: the job with rank 0 on host A, rank 1 on host B, each host named by its address.
two_hosts() {
  local case=$1
  shift
  start "$case" 0 0 "${addr[0]}" "${addr[0]}" "$@"
  start "$case" 1 1 "${addr[0]}" "${addr[1]}" "$@"
}
status() { cut -d' ' -f1 "$work/$1.end" 2> /dev/null || echo none; }
ended() { cut -d' ' -f2 "$work/$1.end"; }
# pid_in HOST: the coupling-train process in host HOST's namespace.
pid_in() {
  local p
  for p in $(ip netns pids "${ns[$1]}"); do
    [[ $(cat "/proc/$p/comm" 2> /dev/null) == coupling-train ]] && echo "$p"
  done
}
# wait_for PATH SECONDS: true once PATH exists.
wait_for() {
  local _
  for _ in $(seq $(($2 * 10))); do [[ -e $1 ]] && return 0; sleep 0.1; done
  return 1
}
# whole_rows LOG: the log opens as users read it (SWMR) while or after it was cut short, its measured
# steps are 0, 50, 100, ... (at least 2), and every row is whole (check_log.py: shapes, row_crc32).
whole_rows() {
  local steps
  steps=$(timeout 60 $python -c "
import h5py
with h5py.File('$1', 'r', swmr=True) as f:
    s = [int(x) for x in f['measurement/step'][:]]
assert s == list(range(0, 50 * len(s), 50)) and len(s) >= 2, s
print(','.join(map(str, s)))" 2>&1) || { echo "$steps"; return 1; }
  timeout 60 $python "$here/python/check_log.py" "$1" "$steps"
}

# The reference: the same job on one host (both ranks in namespace A on loopback: FileStore).
start ref 0 0 127.0.0.1 localhost "${short[@]}"
start ref 1 0 127.0.0.1 localhost "${short[@]}"
wait
if [[ $(status ref.0) != 0 || $(status ref.1) != 0 ]]; then
  fail "the single-host reference job (statuses $(status ref.0) $(status ref.1))" \
    "$work/ref.0.log" "$work/ref.1.log"
fi

# 1. Equivalence, over the TCPStore.
port=$((port + 1))
t0=$(now)
two_hosts eq "${short[@]}"
wait
took=$(seconds $(($(now) - t0)))
if [[ $(status eq.0) != 0 || $(status eq.1) != 0 ]]; then
  fail "1. the two-host job (statuses $(status eq.0) $(status eq.1))" "$work/eq.0.log" "$work/eq.1.log"
elif ! result=$(timeout 60 $python "$here/python/compare_logs.py" "$work/ref.0/run/coupling.h5" "$work/eq.0/run/coupling.h5" \
                  0,50,100,150,200 --every-field 1e-5 2>&1); then
  fail "1. the two-host log differs from the single-host one: $result"
elif ! cmp -s <(cut -d, -f1-5 "$work/ref.0/run/train_log.csv") <(cut -d, -f1-5 "$work/eq.0/run/train_log.csv"); then
  fail "1. the two-host losses differ from the single-host ones" "$work/eq.0/run/train_log.csv"
elif [[ -n $(ls -A "$work/rdv") || -n $(ls -A "$work/eq.1") ]]; then
  fail "1. a FileStore or rank 1's files were written: $(ls -A "$work/rdv" "$work/eq.1")"
else
  echo "ok   1. two hosts (TCPStore at ${addr[0]}:$port, Gloo over the veth) = one host (FileStore), in $took s: $result;" \
    "the same losses; no FileStore, rank 1 wrote nothing"
fi

# 2. The link is cut mid-training.
port=$((port + 1))
two_hosts cut "${long[@]}"
if wait_for "$work/cut.0/run/checkpoints/step_200" 60; then
  # The multi-node path while it runs: rank 0 listens on MASTER_PORT; rank 1 is connected to it and
  # to rank 0's Gloo pairs over the veth.
  p0=$(pid_in 0) p1=$(pid_in 1)
  store=$(ip netns exec "${ns[0]}" ss -Htlnp "sport = :$port")
  peers=$(ip netns exec "${ns[1]}" ss -Htnp state established "dst ${addr[0]}")
  at_store="${addr[0]//./\\.}]?:$port( |$)"
  if grep -q "pid=$p0," <<< "$store" && grep "pid=$p1," <<< "$peers" | grep -Eq "$at_store" &&
     (( $(grep "pid=$p1," <<< "$peers" | grep -Evc "$at_store") >= 1 )); then
    echo "ok   2. while training: rank 0 listens on the store port ($(awk '{print $4}' <<< "$store")), rank 1 has" \
      "$(grep -c "pid=$p1," <<< "$peers") connections to ${addr[0]} (store and Gloo)"
  else
    fail "2. the sockets of the running job do not show the TCPStore path (rank 0 $p0, rank 1 $p1): store '$store' peers '$peers'"
  fi
  cut_at=$(now)
  ip -n "${ns[1]}" link set "${veth[1]}" down
  wait
  e0=$(( $(ended cut.0) - cut_at )) e1=$(( $(ended cut.1) - cut_at ))
  limit=$(( (timeout + 30) * 1000 ))
  if [[ $(status cut.0) == 3 && $(status cut.1) == 3 ]] && (( e0 <= limit && e1 <= limit )) &&
     grep -q "\[error\]" "$work/cut.0.log" && grep -q "\[error\]" "$work/cut.1.log"; then
    echo "ok   2. link cut: both ranks exit 3, after $(seconds $e0) s and $(seconds $e1) s (--dist-timeout $timeout):" \
      "$(grep -o '\[error\] .*' "$work/cut.0.log" | cut -c9-140)"
  else
    fail "2. link cut (statuses $(status cut.0) $(status cut.1) after $(seconds $e0) s and $(seconds $e1) s)" \
      "$work/cut.0.log" "$work/cut.1.log"
  fi
  if rows=$(whole_rows "$work/cut.0/run/coupling.h5" 2>&1); then
    echo "ok   2. the log after the cut keeps whole rows: $(tail -1 <<< "$rows")"
  else
    fail "2. the log after the cut: $rows"
  fi
else
  fail "2. the job did not reach step 200 (statuses $(status cut.0) $(status cut.1))" "$work/cut.0.log" "$work/cut.1.log"
fi
ip -n "${ns[1]}" link set "${veth[1]}" up

# 3. Host B's rank is SIGKILLed mid-training.
port=$((port + 1))
two_hosts kill "${long[@]}"
if wait_for "$work/kill.0/run/checkpoints/step_200" 60 && p1=$(pid_in 1) && [[ -n $p1 ]]; then
  kill -9 "$p1"
  killed_at=$(now)
  wait
  e0=$(( $(ended kill.0) - killed_at ))
  if [[ $(status kill.0) == 3 ]] && (( e0 <= (timeout + 30) * 1000 )) && grep -q "failed on rank 0 of 2 (gloo)" "$work/kill.0.log"; then
    echo "ok   3. rank 1 SIGKILLed: rank 0 exits 3 after $(seconds $e0) s: $(grep -o '\[error\] .*' "$work/kill.0.log" | cut -c9-140)"
  else
    fail "3. rank 0 after rank 1's SIGKILL (status $(status kill.0) after $(seconds $e0) s)" "$work/kill.0.log"
  fi
else
  fail "3. the job did not reach step 200 (statuses $(status kill.0) $(status kill.1))" "$work/kill.0.log" "$work/kill.1.log"
fi

# 4. Garbage on the store's port from a process outside the job (in host B's namespace): 4 KiB of
# random bytes, the connection held 2 s (as nc would), during the rendezvous (rank 0 waits for rank
# 1) and during training.
port=$((port + 1))
# send N: sends 4 KiB of random bytes ($work/junk.N) to host A's MASTER_PORT from host B's
# namespace, holding the connection 2 s; writes what happened to $work/junk.N.result.
send() {
  head -c 4096 /dev/urandom > "$work/junk.$1"
  if timeout 5 ip netns exec "${ns[1]}" bash -c '{ cat "$0"; sleep 2; } > "/dev/tcp/$1/$2"' \
       "$work/junk.$1" "${addr[0]}" "$port" 2> "$work/junk.$1.log"; then
    echo "sent, first bytes $(od -An -tx1 -N8 "$work/junk.$1" | tr -d ' ')" > "$work/junk.$1.result"
  else
    echo "not sent: $(head -1 "$work/junk.$1.log")" > "$work/junk.$1.result"
  fi
}
t0=$(now)
start garbage 0 0 "${addr[0]}" "${addr[0]}" "${short[@]}"
for _ in $(seq 300); do
  ip netns exec "${ns[0]}" ss -Htln "sport = :$port" | grep -q . && break
  sleep 0.1
done
send 1 &  # rank 0 is waiting for rank 1, which starts while the garbage connection is open
sleep 0.3
start garbage 1 1 "${addr[0]}" "${addr[1]}" "${short[@]}"
wait_for "$work/garbage.0/run/checkpoints/step_0" 30  # rendezvous done, training starts
[[ -e $work/garbage.0.end ]] && echo "the job had ended, " > "$work/junk.2.prefix"
send 2
wait
took=$(seconds $(($(now) - t0)))
s0=$(status garbage.0) s1=$(status garbage.1)
during_rendezvous=$(cat "$work/junk.1.result") during_training=$(cat "$work/junk.2.prefix" "$work/junk.2.result" 2> /dev/null | tr -d '\n')
if [[ $s0 == 0 && $s1 == 0 ]]; then
  if result=$(timeout 60 $python "$here/python/compare_logs.py" "$work/ref.0/run/coupling.h5" \
                "$work/garbage.0/run/coupling.h5" 0,50,100,150,200 --every-field 1e-5 2>&1); then
    echo "ok   4. garbage on the store port (rendezvous: $during_rendezvous; training: $during_training):" \
      "the job completed in $took s with the reference log ($result)"
  else
    fail "4. after garbage on the store port the job completed with another log: $result"
  fi
elif [[ $s0 =~ ^[1-9][0-9]*$ && $s1 =~ ^[1-9][0-9]*$ && $s0 != 124 && $s0 != 137 && $s1 != 124 && $s1 != 137 ]] &&
     grep -q "\[error\]" "$work/garbage.0.log" && grep -q "\[error\]" "$work/garbage.1.log"; then
  echo "ok   4. garbage on the store port (rendezvous: $during_rendezvous; training: $during_training):" \
    "the job failed cleanly in $took s, statuses $s0 $s1: $(grep -o '\[error\] .*' "$work/garbage.0.log" | cut -c9-140)"
else
  fail "4. garbage on the store port (rendezvous: $during_rendezvous; training: $during_training): statuses $s0 $s1 after $took s" \
    "$work/garbage.0.log" "$work/garbage.1.log"
fi

# 5. GLOO_SOCKET_IFNAME where the hostname resolves to loopback.
port=$((port + 1))
t0=$(now)
# (Should Gloo bind the hostname's 127.0.0.1 instead, each rank dials 127.0.0.1 in its own namespace:
# one fails at once, the other after a few --dist-timeouts, hence 5 s here.)
start ifname 0 0 "${addr[0]}" localhost "${tiny[@]}" --dist-timeout 5 --steps 8 --measure-schedule every:4 --out run
start ifname 1 1 "${addr[0]}" localhost "${tiny[@]}" --dist-timeout 5 --steps 8 --measure-schedule every:4 --out run
wait
took=$(seconds $(($(now) - t0)))
if [[ $(status ifname.0) == 0 && $(status ifname.1) == 0 ]]; then
  echo "ok   5. hostname 'localhost' on both hosts, GLOO_SOCKET_IFNAME=<veth>: the job completed in $took s"
else
  why=
  grep -q "\[127\.0\.0\.1\]" "$work/ifname.0.log" "$work/ifname.1.log" &&
    why=": Gloo bound the hostname's address (127.0.0.1), not GLOO_SOCKET_IFNAME's interface"
  fail "5. GLOO_SOCKET_IFNAME=<veth> with the hostname resolving to loopback: statuses $(status ifname.0) $(status ifname.1) after $(seconds $(( $(ended ifname.0) - t0 ))) s and $(seconds $(( $(ended ifname.1) - t0 ))) s$why" \
    "$work/ifname.0.log" "$work/ifname.1.log"
fi

echo "$failures failed ($(( $(date +%s) - began )) s)"
[[ $failures -eq 0 ]]
