# What the 2-rank tests share (data_parallel.sh, analyze_ranks.sh); sourced once $bin (the tool
# under test) is set. A job of 2 ranks on 127.0.0.1 with a port of the test's own (bump $port
# between jobs), failure reports counted in $failures, starting one rank, and killing one.
export MASTER_ADDR=127.0.0.1 WORLD_SIZE=2 LOCAL_WORLD_SIZE=2
port=$(( 20000 + RANDOM % 20000 ))
failures=0
fail() { echo "FAIL $1"; shift; for f in "$@"; do echo "--- $f"; tail -20 "$f"; done; failures=$((failures + 1)); }

# rank R DIR LOG ARGS...: rank R of 2 in working directory DIR, in the background.
rank() {
  local r=$1 dir=$2 log=$3
  shift 3
  (cd "$dir" && MASTER_PORT=$port RANK=$r LOCAL_RANK=$r exec "$bin" "$@") > "$log" 2>&1 &
}

# kill_rank1 P0 P1 LOG LIMIT [SIGNAL]: sends rank 1 (process P1) SIGNAL (default KILL; STOP
# stops it); rank 0 (process P0, output LOG) must exit 3 within LIMIT seconds, naming the
# collective that failed. Rank 1 is SIGKILLed afterwards (a stopped one would linger).
kill_rank1() {
  local p0=$1 p1=$2 log=$3 limit=$4 signal=${5:-KILL} s0 killed_at elapsed
  kill -"$signal" "$p1"
  killed_at=$(date +%s)
  wait "$p0"; s0=$?
  elapsed=$(( $(date +%s) - killed_at ))
  kill -9 "$p1" 2>/dev/null
  if [[ $s0 -eq 3 ]] && grep -q "failed on rank 0 of 2 (gloo)" "$log" && (( elapsed <= limit )); then
    echo "ok   rank 1 got SIG$signal: rank 0 exited 3 after ${elapsed} s: $(grep -o '\[error\] .* failed on rank 0 of 2' "$log" | cut -c9-)"
  else
    fail "rank 0 after rank 1 got SIG$signal (status $s0, ${elapsed} s)" "$log"
  fi
}
