#!/usr/bin/env bash
# A run whose disk fills up (its run directory, or only its log's disk): it stops with exit
# status 2 and one line that says so, its last checkpoint and every completed log row intact;
# after space is freed, --resume completes the run with a log whose steps increase without gaps
# or duplicates. A 2-rank run whose rank 0 cannot create its log (a full disk, after every
# up-front check passed) stops on both ranks at once, naming it. Uses a small tmpfs (needs mount
# rights, as root in a VM or a container with CAP_SYS_ADMIN); skipped (status 77) with the reason
# where it cannot mount.
# Usage: full_disk.sh path/to/coupling-train
set -uo pipefail
train=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
python=${COUPLING_PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
disk="$work/disk"
mkdir "$disk"
trap 'umount "$disk" 2>/dev/null; rm -rf "$work"' EXIT
if ! mount -t tmpfs -o size=4m tmpfs "$disk" 2>"$work/mount.log"; then
  echo "skip: cannot mount a small tmpfs here ($(head -1 "$work/mount.log")): the full-disk test needs mount rights"
  exit 77
fi
for i in $(seq 300); do echo "In the beginning God created the heaven and the earth."; done > "$work/tiny.txt"
args=(gpt --data "$work/tiny.txt" --d-model 16 --layers 2 --heads 2 --context 16 --batch 4 --threads 1
      --eval-windows 4 --probes 2 --k 2,4 --tokens 0,-1 --steps 400 --ckpt-every 10 --eval-every 10
      --measure-schedule every:5)

# check_complete LOG: the steps of a completed 400-step run, without gaps or duplicates.
check_complete() {
  $python - "$1" <<'PY'
import sys
import h5py
with h5py.File(sys.argv[1], "r", swmr=True, libver="latest") as f:
    m, t, e = f["measurement/step"][:], f["train/step"][:], f["eval/step"][:]
    assert list(m) == list(range(0, 401, 5)), m
    assert list(t) == list(range(400)), (t[:5], t[-5:], len(t))
    assert list(e) == list(range(10, 401, 10)), e
    for name, ds in f["measurement"].items():
        if not h5py.h5ds.is_scale(ds.id) or name == "step":
            assert ds.shape[0] == len(m), (name, ds.shape)
print(f"{len(m)} measurements, {len(t)} training rows, steps increasing without gaps or duplicates")
PY
}

# fill_and_resume NAME ARGS...: the run stops on the full disk, then completes after a remount.
fill_and_resume() {
  local name=$1 status=0
  shift
  "$train" "$@" > "$work/$name.log" 2>&1 || status=$?
  local errors
  errors=$(grep -c "\[error\]" "$work/$name.log")
  if [[ $status -ne 2 || $errors -ne 1 ]] || ! grep "\[error\]" "$work/$name.log" | grep -Eiq "disk full|no space"; then
    echo "FAIL $name: a full disk must stop the run with status 2 and one error line (status $status)"
    tail -5 "$work/$name.log"; exit 1
  fi
  echo "ok   $name full: status 2, $(grep -o '\[error\] .*' "$work/$name.log" | cut -c9-150)"
  mount -o remount,size=64m "$disk"
  "$train" gpt --resume "$out" > "$work/$name-resumed.log" 2>&1 || { echo "FAIL resume"; tail -5 "$work/$name-resumed.log"; exit 1; }
  echo "ok   $name: after freeing space, --resume completed the run from $(grep -o 'step_[0-9]* at' "$work/$name-resumed.log" | head -1 | cut -d' ' -f1): $(check_complete "$log")"
}

# 1. The run directory fills up (a checkpoint is the first write to fail here).
out="$disk/run"
log="$out/coupling.h5"
fill_and_resume run_directory "${args[@]}" --out "$out"

# 2. Only the log's disk fills up (an HDF5 flush fails), after about 60 measurements and then at
# the very first row (HDF5 1.10 used to crash at exit closing that file again: SIGSEGV, status
# 139); checkpoints have room.
for case in "log_disk 2500k" "log_disk_first_row 1500k"; do
  read -r name size <<< "$case"
  umount "$disk"
  mount -t tmpfs -o "size=$size" tmpfs "$disk"
  out="$work/$name"
  log="$disk/coupling.h5"
  fill_and_resume "$name" "${args[@]}" --out "$out" --log "$log"
done

# 3. A fresh 2-rank run whose log's disk is already full: every up-front check passes (an empty
# file still fits), then rank 0 cannot create the log. Rank 1 learns it at once and exits naming
# rank 0's failure, instead of waiting in the step-0 measurement until --dist-timeout (60 s here).
umount "$disk"
mount -t tmpfs -o size=1m tmpfs "$disk"
head -c 2m /dev/zero > "$disk/filler" 2> /dev/null
bin=$train
source "$here/cli/two_ranks.sh"
out="$work/full_rank0"
for r in 0 1; do rank "$r" "$work" "$work/rank$r.log" "${args[@]}" --steps 20 --out "$out" --log "$disk/coupling.h5" \
  --dist-timeout 60; done
pids=($(jobs -p))
start=$SECONDS
wait "${pids[0]}"; s0=$?
wait "${pids[1]}"; s1=$?
took=$((SECONDS - start))
if [[ $s0 -eq 2 && $s1 -ne 0 && $took -le 20 ]] && grep -Eiq "\[error\] .*(disk full|no space)" "$work/rank0.log" &&
  grep -q "\[error\] rank(s) 0 stopped .* during the creation of the coupling log" "$work/rank1.log" && [[ ! -e $disk/coupling.h5 && ! -e $disk/coupling.h5.creating ]]; then
  echo "ok   rank 0 cannot create the log: both ranks exit within ${took} s (rank 0: $s0, rank 1: $s1): $(grep -o '\[error\] .*' "$work/rank1.log" | cut -c9-150)"
else
  fail "rank 0 cannot create the log (statuses $s0 $s1, ${took} s)" "$work/rank0.log" "$work/rank1.log"
fi
exit $((failures > 0))
