#!/usr/bin/env bash
# coupling-train on bad input: each case must exit with status 2, print exactly one error line
# naming the problem, and leave no config.toml/summary.json/checkpoint behind; an --out that did
# not exist before is not created at all.
# Usage: cli_errors.sh path/to/coupling-train
set -uo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
passed=0

for i in $(seq 450); do echo "the quick brown fox jumps over the lazy dog."; done > "$work/tiny.txt"
: > "$work/empty.txt"
echo "short" > "$work/short.txt"
echo "not a directory" > "$work/plainfile"
tiny=(--data "$work/tiny.txt" --d-model 16 --layers 1 --heads 2 --context 16 --batch 4 --threads 1 --eval-windows 4)

# expect_error NAME REGEX OUTDIR ARGS...
expect_error() {
  local name=$1 regex=$2 out=$3
  shift 3
  local log="$work/$name.log" existed=0
  [[ -n $out && -e $out ]] && existed=1
  "$bin" gpt "$@" > "$log" 2>&1
  local status=$?
  local errors
  errors=$(grep -c "\[error\]" "$log")
  if [[ $status -ne 2 ]]; then
    echo "FAIL $name: exit status $status, expected 2"; cat "$log"; failures=$((failures + 1)); return
  fi
  if [[ $errors -ne 1 ]] || ! grep "\[error\]" "$log" | grep -Eq -- "$regex"; then
    echo "FAIL $name: expected one error line matching /$regex/"; cat "$log"; failures=$((failures + 1)); return
  fi
  if [[ -n $out ]] && { [[ -e $out/summary.json ]] || [[ -e $out/config.toml && $name != resume_* ]]; }; then
    echo "FAIL $name: files left in $out"; ls -la "$out"; failures=$((failures + 1)); return
  fi
  if [[ -n $out && $existed -eq 0 && -e $out ]]; then
    echo "FAIL $name: created $out"; ls -la "$out"; failures=$((failures + 1)); return
  fi
  echo "ok   $name: $(grep '\[error\]' "$log" | sed 's/.*\[error\] //')"
  passed=$((passed + 1))
}

expect_error missing_data "cannot read data file .*No such file" "$work/o1" "${tiny[@]}" --data "$work/nope.txt" --out "$work/o1"
expect_error data_directory "cannot read data file .* not a regular file" "$work/o1" "${tiny[@]}" --data "$work" --out "$work/o1"
expect_error data_device "cannot read data file /dev/zero: it is not a regular file" "$work/o1" "${tiny[@]}" --data /dev/zero --out "$work/o1"
expect_error empty_data "is empty" "$work/o2" "${tiny[@]}" --data "$work/empty.txt" --out "$work/o2"
expect_error short_data "too short for --context" "$work/o3" "${tiny[@]}" --data "$work/short.txt" --out "$work/o3"
expect_error context_too_long "too short for --context 50000" "$work/o4" "${tiny[@]}" --context 50000 --out "$work/o4"
expect_error heads "not divisible by --heads" "$work/o5" "${tiny[@]}" --d-model 30 --heads 4 --out "$work/o5"
expect_error bad_tokens "token list '1,x' is not a comma-separated list of integers \(flag --tokens\)" "$work/o5t" \
  "${tiny[@]}" --tokens 1,x --out "$work/o5t"
expect_error unwritable_out "cannot create output directory" "" "${tiny[@]}" --out "$work/plainfile/run"
expect_error resume_empty "no checkpoint" "$work/o6" "${tiny[@]}" --resume "$work/o6"

# A real (2-step) run to resume from.
"$bin" gpt "${tiny[@]}" --steps 2 --out "$work/run" > "$work/run.log" 2>&1 || { echo "FAIL: setup run"; cat "$work/run.log"; exit 1; }
cp -r "$work/run" "$work/override"  # for the --override case below
rm -f "$work/run/summary.json"
expect_error resume_conflict "--lr 0.5 conflicts with the checkpoint .* add --override" "$work/run" --resume "$work/run" --lr 0.5
expect_error resume_override_model "--layers 3 conflicts with the checkpoint" "$work/run" --resume "$work/run" --layers 3 --override
expect_error override_new_run "--override goes with --resume" "$work/o22" "${tiny[@]}" --out "$work/o22" --override
expect_error overwrite_run "already holds a run" "" "${tiny[@]}" --steps 2 --out "$work/run"
# The same path holding other text: refused by its SHA-256, by the checkpoint and by the log.
cp "$work/tiny.txt" "$work/tiny.saved" && sed -i 's/fox/cat/' "$work/tiny.txt"
expect_error resume_other_data "is not the data this run was trained on" "$work/run" --resume "$work/run"
mv "$work/tiny.saved" "$work/tiny.txt"
# A tampered config.toml is caught by the manifest before it is parsed.
cp "$work/run/checkpoints/step_2/config.toml" "$work/config.saved"
printf 'lr = "not a number"\n' >> "$work/run/checkpoints/step_2/config.toml"
expect_error resume_tampered_config "is corrupt: config.toml does not match its size and SHA-256" "$work/run" \
  --resume "$work/run"
mv "$work/config.saved" "$work/run/checkpoints/step_2/config.toml"
head -c 100 "$work/run/checkpoints/step_2/model.safetensors" > "$work/truncated" && mv "$work/truncated" "$work/run/checkpoints/step_2/model.safetensors"
expect_error resume_corrupt "is corrupt" "$work/run" --resume "$work/run"

# Coupling-log inputs.
mkdir -p "$work/logdir"
expect_error log_is_directory "is a directory" "$work/o7" "${tiny[@]}" --out "$work/o7" --log "$work/logdir"
expect_error log_unwritable "cannot create output directory .*choose another --log" "$work/o8" "${tiny[@]}" \
  --out "$work/o8" --log "$work/plainfile/c.h5"
expect_error too_many_probes "--probes 5000 is more than the validation split" "$work/o9" "${tiny[@]}" \
  --out "$work/o9" --probes 5000
expect_error bad_schedule "bad measurement schedule item 'often'" "$work/o10" "${tiny[@]}" --out "$work/o10" \
  --measure-schedule often
expect_error max_memory_exceeded "the measurement needs about .* GiB \(MiB: process .*\) and 0.00 GiB is available \(--max-memory\): measure fewer probes" \
  "$work/o13" "${tiny[@]}" --out "$work/o13" --max-memory 1M
expect_error max_memory_unreadable "--max-memory '4X': give a memory size such as 4G" "$work/o14" "${tiny[@]}" \
  --out "$work/o14" --max-memory 4X
"$bin" gpt "${tiny[@]}" --steps 2 --out "$work/logrun" > "$work/logrun.log" 2>&1 || { echo "FAIL: log setup run"; cat "$work/logrun.log"; exit 1; }
rm -f "$work/logrun/summary.json"
expect_error log_exists "coupling log .* already exists" "$work/o11" "${tiny[@]}" --steps 2 --out "$work/o11" \
  --log "$work/logrun/coupling.h5"
expect_error resume_other_k "--k '4' conflicts with the checkpoint" "$work/logrun" --resume "$work/logrun" --k 4
echo "not an hdf5 file" > "$work/logrun/coupling.h5"
expect_error resume_foreign_log "not an HDF5 file" "$work/logrun" --resume "$work/logrun"

# A backend c10d does not have, in a data-parallel launch (torchrun's variables): the flag's
# validator refuses it before any rendezvous; from a config file, the run config's own check does.
# (The 2-process failures are in data_parallel.sh.)
RANK=1 WORLD_SIZE=2 expect_error unknown_backend "--backend: mpi not in \\{auto,gloo,nccl\\}" "$work/o12" "${tiny[@]}" \
  --backend mpi --out "$work/o12"
printf 'backend = "mpi"\n' > "$work/bad_choices.toml"
expect_error bad_backend "--backend must be 'auto', 'gloo' or 'nccl'" "$work/o13" "${tiny[@]}" \
  --config "$work/bad_choices.toml" --out "$work/o13"

# A CUDA device that is not there (no GPU, or a CPU-only LibTorch): one line saying which, and no
# run directory at all.
expect_error device_cuda "--device cuda: (this LibTorch \\(.*\\) was built without CUDA|no CUDA device is visible)" \
  "$work/o14" "${tiny[@]}" --device cuda --out "$work/o14"
if [[ -e $work/o14 ]]; then echo "FAIL device_cuda: $work/o14 was created"; failures=$((failures + 1)); fi
expect_error device_bad "--device 'tpu' is not a device: use cpu, cuda, cuda:N or auto" "$work/o15" "${tiny[@]}" \
  --device tpu --out "$work/o15"
expect_error precision_bad "--precision: fp16 not in \\{fp32,bf16\\}" "$work/o16" "${tiny[@]}" --precision fp16 \
  --out "$work/o16"
printf 'precision = "fp16"\n' > "$work/bad_precision.toml"
expect_error precision_bad_config "--precision 'fp16' is not a precision: use 'fp32' or 'bf16'" "$work/o16" "${tiny[@]}" \
  --config "$work/bad_precision.toml" --out "$work/o16"
# A bad value in a config file is refused before --out is made: not even an empty directory.
printf 'lr = -1.0\n' > "$work/bad_lr.toml"
expect_error bad_config_value "--lr must be a positive number \(got -1\)" "$work/o_bad_config" "${tiny[@]}" \
  --config "$work/bad_lr.toml" --out "$work/o_bad_config"
if [[ -e $work/o_bad_config ]]; then echo "FAIL bad_config_value: $work/o_bad_config was created"; failures=$((failures + 1)); fi
expect_error k_above_d "K = 32 is larger than the model's width d = 16: give K values up to 16" "$work/o17" \
  "${tiny[@]}" --k 4,32 --out "$work/o17"
expect_error row_cap "one measurement would log .* MiB .*over the cap of 1 MiB: .*--max-row-mib" "$work/o18" \
  "${tiny[@]}" --tokens all --probes 64 --max-row-mib 1 --out "$work/o18"
expect_error matrix_free_exact "the matrix-free Jacobian path cannot run: .*exact spectrum .*\(flag --jacobian\)" \
  "$work/o17b" "${tiny[@]}" --jacobian matrix-free --spectrum exact --out "$work/o17b"
expect_error depth_band_negative "--depth-band must be >= 0 \(got -1; 0 = every pair\)" "$work/o17c" "${tiny[@]}" \
  --depth-band -1 --out "$work/o17c"
expect_error power_iterations_negative "--power-iterations must be in 0..64 \(got -1\)" "$work/o17d" "${tiny[@]}" \
  --power-iterations -1 --out "$work/o17d"
for o in o17 o17b o18; do
  if [[ -e $work/$o/coupling.h5 || -d $work/$o/checkpoints ]]; then
    echo "FAIL $o: a log or checkpoint was written"; ls -la "$work/$o"; failures=$((failures + 1))
  fi
done
expect_error lr_inf "--lr must be a positive number \(got inf\)" "$work/o19" "${tiny[@]}" --lr inf --out "$work/o19"
expect_error dropout_nan "--dropout must be in \[0, 1\) \(got nan\)" "$work/o20" "${tiny[@]}" --dropout nan \
  --out "$work/o20"
expect_error threads_huge "--threads must be in 0..1024 \(got 100000" "$work/o21" "${tiny[@]}" --threads 100000 \
  --out "$work/o21"

# One run per directory: a second trainer, or a --resume, on a directory whose run is going.
"$bin" gpt "${tiny[@]}" --steps 100000 --ckpt-every 1 --log none --out "$work/busy" > "$work/busy.log" 2>&1 &
busy=$!
for _ in $(seq 600); do [[ -d $work/busy/checkpoints/step_1 ]] && break; sleep 0.05; done
expect_error locked_out "run directory .*/busy is in use by process [0-9]+@.*: wait for that run to end" "" \
  "${tiny[@]}" --steps 2 --log none --out "$work/busy"
expect_error locked_resume "run directory .*/busy is in use by process $busy@" "" --resume "$work/busy"
kill -9 $busy; wait $busy 2>/dev/null
timeout 3 "$bin" gpt --resume "$work/busy" > "$work/unlocked.log" 2>&1
if grep -q "in use" "$work/unlocked.log" || ! grep -q "resumed from" "$work/unlocked.log"; then
  echo "FAIL the lock outlived its holder"; cat "$work/unlocked.log"; failures=$((failures + 1))
else
  echo "ok   unlocked_after_kill: the lock ends with its holder (kill -9)"; passed=$((passed + 1))
fi
"$bin" gpt "${tiny[@]}" --steps 2 --log none --out "$work/free" > "$work/free.log" 2>&1 || {
  echo "FAIL a fresh directory after the lock tests"; failures=$((failures + 1)); }

# A bad line in train_log.csv: one line naming the file and line on resume, never an abort.
"$bin" gpt "${tiny[@]}" --steps 2 --ckpt-every 1 --log none --out "$work/csv" > "$work/csv.log" 2>&1
echo "garbage,1,2" >> "$work/csv/train_log.csv"
expect_error bad_csv_line "train_log.csv line 4 does not start with a step \(garbage,1,2\)" "" --resume "$work/csv"

# --override: the optimisation may change on resume, and the change is recorded.
if "$bin" gpt --resume "$work/override" --lr 0.001 --warmup 20 --override > "$work/override.log" 2>&1 \
   && grep -q "^lr = 0.001" "$work/override/config.toml" \
   && grep -q "resumed with changed optimisation from step 2: lr 0.002 -> 0.001, warmup 100 -> 20" "$work/override.log" \
   && /usr/bin/env "${COUPLING_PYTHON:-/usr/bin/python3}" -c "import h5py, sys; a = h5py.File(sys.argv[1], 'r', swmr=True, libver='latest').attrs['resume_overrides']; assert a == 'step 2: lr 0.002 -> 0.001, warmup 100 -> 20', a" "$work/override/coupling.h5"; then
  echo "ok   override: --resume --override --lr 0.001 --warmup 20 changes them, in config.toml and the log"; passed=$((passed + 1))
else
  echo "FAIL override"; cat "$work/override.log"; failures=$((failures + 1))
fi

# CLI11 parse errors are non-zero too.
"$bin" gpt --no-such-flag > "$work/flag.log" 2>&1
if [[ $? -eq 0 ]]; then echo "FAIL unknown_flag: exit 0"; failures=$((failures + 1)); else echo "ok   unknown_flag"; passed=$((passed + 1)); fi

# --print-schedule: the trainer's own schedule, for scripts (python/coupling/schedule_density.py).
printed=$("$bin" --print-schedule "every:40 log:4" --print-schedule log:2 --steps 100 2>&1 | tr '\n' '|')
if [[ $printed == "0 1 5 22 40 80 100|0 1 100|" ]]; then
  echo "ok   print_schedule: every:40 log:4 and log:2 over 100 steps -> $printed"; passed=$((passed + 1))
else
  echo "FAIL print_schedule: '$printed'"; failures=$((failures + 1))
fi
"$bin" --print-schedule "often" --steps 100 > "$work/schedule.log" 2>&1
status=$?
if [[ $status -eq 2 && $(grep -c '\[error\]' "$work/schedule.log") -eq 1 ]] && grep -q "often" "$work/schedule.log"; then
  echo "ok   print_schedule_bad: $(grep '\[error\]' "$work/schedule.log" | sed 's/.*\[error\] //')"; passed=$((passed + 1))
else
  echo "FAIL print_schedule_bad (status $status)"; cat "$work/schedule.log"; failures=$((failures + 1))
fi
"$bin" > "$work/nomodel.log" 2>&1
status=$?
if [[ $status -eq 2 ]] && grep -q "give a model to train" "$work/nomodel.log"; then
  echo "ok   no_model"; passed=$((passed + 1))
else
  echo "FAIL no_model (status $status)"; cat "$work/nomodel.log"; failures=$((failures + 1))
fi

echo "$passed passed, $failures failed"
[[ $failures -eq 0 ]]
