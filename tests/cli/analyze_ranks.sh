#!/usr/bin/env bash
# coupling-analyze on several ranks (docs/analysis.md), with real processes on 127.0.0.1:
#  1. 2 ranks write the log of 1 rank with their thread count, to 1e-5 of each field's scale (another
#     thread count rounds float32 otherwise: 1.1e-5 with MKL, so the reference runs on 1 thread); only
#     rank 0 writes (rank 1 runs in another directory with the same relative --log, which must
#     stay empty); each rank takes its share of the cores (LOCAL_WORLD_SIZE).
#  2. SIGKILL of rank 1 mid-series: rank 0 exits 3 within --dist-timeout + 30 s; the log keeps
#     whole steps; the same command continues the series, and the result equals 1 rank's. A
#     stopped rank 1 (SIGSTOP) ends rank 0 with exit 3 within --dist-timeout + 30 s too.
#  3. Bad input on every rank, exit 2 in one line on both and no log: ranks given different
#     directory lists, a shard missing from one checkpoint of the series.
#  4. The end-of-run summary's intervals and nulls equal coupling-log's (coupling.intervals: the same
#     seeded resamples in both languages).
# Usage: analyze_ranks.sh path/to/coupling-analyze
set -uo pipefail
bin=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
launch="$here/../scripts/launch.sh"
python=${COUPLING_PYTHON:-/usr/bin/python3}
fixture=$here/fixtures/hf-bf16-log
work=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
export COUPLING_ANALYZE=$bin
source "$here/cli/two_ranks.sh"

# A series of 31 checkpoints (steps 0, 10, ..., 300) of the fixture's model, and 40 probes.
mkdir "$work/series"
for s in $(seq 0 10 300); do ln -s "$fixture/model" "$work/series/step$s"; done
series=("$work"/series/step{0..300..10})
for _ in $(seq 20); do cat "$fixture/ids.txt"; done > "$work/ids40.txt"
options=(--probe-ids "$work/ids40.txt" --k 4,16 --tokens all --dist-timeout 10)

# 1. Equivalence, rank-0-only writing, threads per rank.
threads=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))
short=(--hf "${series[@]:0:4}" "${options[@]}")
WORLD_SIZE=1 LOCAL_WORLD_SIZE=1 timeout 120 "$bin" "${short[@]}" --threads $threads --log "$work/one.h5" \
  > "$work/one.log" 2>&1 ||
  fail "1 rank" "$work/one.log"
mkdir "$work/r0" "$work/r1"
rank 0 "$work/r0" "$work/eq0.log" "${short[@]}" --log two.h5; p0=$!
rank 1 "$work/r1" "$work/eq1.log" "${short[@]}" --log two.h5; p1=$!
wait $p0; s0=$?; wait $p1; s1=$?
if [[ $s0 -ne 0 || $s1 -ne 0 ]]; then
  fail "2-rank analysis (statuses $s0 $s1)" "$work/eq0.log" "$work/eq1.log"
elif result=$($python "$here/python/compare_logs.py" "$work/one.h5" "$work/r0/two.h5" 0,10,20,30 \
                --every-field-scale 1e-5 2>&1); then
  echo "ok   2 ranks = 1 rank: $result"
else
  fail "2 ranks differ from 1 rank: $result"
fi
if [[ -z $(ls -A "$work/r1") ]] && grep -q "compute: $threads intra-op thread(s)" "$work/eq0.log"; then
  echo "ok   only rank 0 wrote the log; each rank computes on $threads thread(s) of $(nproc) cores"
else
  fail "rank 1 wrote files or the threads are not shared: $(find "$work/r1" | head)" "$work/eq0.log"
fi

# 2. SIGKILL of rank 1 mid-series, then the same command again.
port=$((port + 1))
full=(--hf "${series[@]}" "${options[@]}" --log "$work/killed.h5")
rank 0 "$work" "$work/k0.log" "${full[@]}"; p0=$!
rank 1 "$work" "$work/k1.log" "${full[@]}"; p1=$!
for _ in $(seq 600); do grep -q "step     50 " "$work/k0.log" && break; sleep 0.1; done
kill_rank1 $p0 $p1 "$work/k0.log" 40  # --dist-timeout + 30 s
kept=$($python -c "
import h5py; s = list(h5py.File('$work/killed.h5', 'r')['measurement/step'][:])
assert s == list(range(0, 10 * len(s), 10)) and 6 <= len(s) < 31, s; print(len(s))" 2>&1)
if [[ $? -eq 0 ]]; then
  echo "ok   the log keeps whole steps after the kill: $kept of 31"
else
  fail "log after the kill: $kept"
fi
port=$((port + 1))
MASTER_PORT=$port timeout 300 "$launch" 2 analyze "${full[@]}" > "$work/again.log" 2>&1
s=$?
WORLD_SIZE=1 LOCAL_WORLD_SIZE=1 timeout 300 "$bin" "${full[@]/killed.h5/whole.h5}" --threads $threads \
  > "$work/whole.log" 2>&1
if [[ $s -eq 0 ]] && grep -q "$((31 - kept)) model(s) measured, $kept already in the log" "$work/again.log" &&
   result=$($python "$here/python/compare_logs.py" "$work/whole.h5" "$work/killed.h5" "$(seq -s, 0 10 300)" \
              --every-field-scale 1e-5 2>&1); then
  echo "ok   the same command continued the series: $((31 - kept)) more steps; = 1 rank's log: $result"
else
  fail "continuing the series (status $s): ${result:-}" "$work/again.log" "$work/whole.log"
fi

port=$((port + 1))
stopped=(--hf "${series[@]}" "${options[@]/#10/5}" --log "$work/stopped.h5")  # --dist-timeout 5
rank 0 "$work" "$work/s0.log" "${stopped[@]}"; p0=$!
rank 1 "$work" "$work/s1.log" "${stopped[@]}"; p1=$!
for _ in $(seq 600); do grep -q "step     30 " "$work/s0.log" && break; sleep 0.1; done
kill_rank1 $p0 $p1 "$work/s0.log" 35 STOP

# 3. Bad input: one line and exit 2 on every rank, no log.
expect_both() {
  local name=$1 message=$2 s0 s1
  wait $p0; s0=$?; wait $p1; s1=$?
  if [[ $s0 -eq 2 && $s1 -eq 2 ]] && grep -Eq "\[error\] .*$message" "$work/${name}0.log" &&
     grep -Eq "\[error\] .*$message" "$work/${name}1.log" && [[ ! -e $work/$name.h5 ]]; then
    echo "ok   $name: both ranks exit 2: $(grep -o '\[error\] .*' "$work/${name}0.log" | cut -c9-160)"
  else
    fail "$name (statuses $s0 $s1)" "$work/${name}0.log" "$work/${name}1.log"
  fi
  port=$((port + 1))
}
rank 0 "$work" "$work/lists0.log" --hf "${series[@]:0:3}" "${options[@]}" --log "$work/lists.h5"; p0=$!
rank 1 "$work" "$work/lists1.log" --hf "${series[@]:0:2}" "${options[@]}" --log "$work/lists.h5"; p1=$!
expect_both lists "the models and their steps differ from rank 0"
cp -r "$fixture/model" "$work/series/step310"
rm "$work/series/step310/model-00002-of-00003.safetensors"
for r in 0 1; do
  rank $r "$work" "$work/shard$r.log" --hf "${series[@]:0:3}" "$work/series/step310" "${options[@]}" \
    --log "$work/shard.h5"
  eval "p$r=\$!"
done
expect_both shard "model-00002-of-00003.safetensors"

# 4. The summary's intervals = coupling-log's, on 40 probes (2 would give [min, max] whatever the resamples).
"$bin" --hf "${series[@]:0:2}" --probe-ids "$work/ids40.txt" --k 4,16 --threads 1 --log "$work/pair.h5" \
  > "$work/pair.log" 2>&1 || fail "2-probe analysis" "$work/pair.log"
summary=$(grep -o "step      0: K=4 .*" "$work/pair.log")
table=$($python "$here/../scripts/coupling_log.py" "$work/pair.h5" --csv 2>&1)
if result=$($python - "$summary" "$table" <<'PY' 2>&1
import io, re, sys
import pandas as pd
printed = [float(x) for x in re.findall(r"-?\d+\.\d+", sys.argv[1])]  # per K: mean lo hi (null null_sd)
row = pd.read_csv(io.StringIO(sys.argv[2])).iloc[0]
read = [row[f"m_offdiag_k{k}_ujv_norm{suffix}"] for k in (4, 16) for suffix in ("", "_lo", "_hi", "_null", "_null_sd")]
assert len(printed) == len(read) == 10 and all(abs(a - b) <= 5e-5 for a, b in zip(printed, read)), (printed, read)
print(" ".join(f"{x:.4f}" for x in read))
PY
); then
  echo "ok   the summary's intervals = coupling-log's: $result"
else
  fail "summary against coupling-log: $result" "$work/pair.log"
fi
exit $((failures > 0))
