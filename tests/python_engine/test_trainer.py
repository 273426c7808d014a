"""coupling.hf.CouplingCallback in transformers' Trainer (tiny_trainer.py): its log equals coupling-analyze --hf on
the run's own checkpoints, a SIGKILLed and resumed run's log equals an uninterrupted one, torchrun's two ranks
share the measurement, and report_to receives the headline scalars."""
import json
import os
import subprocess
import sys

import numpy as np
from conftest import HERE, analyze_run, max_differences, train

from coupling.log import open_log

STEPS = [0, 10, 30, 60]
# Both sides run the same float32 arithmetic on the same weights (the checkpoints hold the live parameters
# bit for bit); 1e-5 leaves room for a different summation order in threaded BLAS.
TOLERANCE = 1e-5


def test_log_equals_coupling_analyze_on_the_checkpoints(trainer_run, analyze, tmp_path):
    log = open_log(trainer_run / "coupling.h5")
    assert log.step.values.tolist() == STEPS
    reference = open_log(analyze_run(analyze, trainer_run, tmp_path / "analyze.h5"))
    differences = max_differences(log, reference)
    assert "depth_mean_offdiag_avg" in differences and "layer_linearity" in differences
    assert max(differences.values()) <= TOLERANCE, {k: v for k, v in differences.items() if v > TOLERANCE}


def test_training_rows_and_state(trainer_run):
    ds = open_log(trainer_run / "coupling.h5", "all")
    assert ds.train_step.values.tolist() == list(range(60))  # one /train row per update, from the Trainer's logs
    assert np.isfinite(ds.train_loss.values).all() and ds.train_loss.values[-1] < ds.train_loss.values[0]
    with open(trainer_run / "checkpoint-30" / "coupling_callback.json") as f:
        state = json.load(f)
    assert float(state["measure_seconds"]) > 0 and state["pending_since"] == "-1"


def test_report_to_receives_the_headline_scalars(trainer_run):
    # Step 0's scalars reach the Trainer's logs at its first logging step (global step 1); coupling/step says 0.
    tool = os.path.join(HERE, "..", "python", "read_tensorboard.py")
    p = subprocess.run([sys.executable, tool, str(trainer_run / "tensorboard"), "--expect", "train/coupling/m_10:4",
                        "train/coupling/m_10_null:4", "train/coupling/lss:4", "--values",
                        "train/coupling/step=1:0,10:10,30:30,60:60"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_killed_and_resumed_run_equals_the_uninterrupted_one(trainer_run, tmp_path):
    out = tmp_path / "killed"
    killed = train(out, "--kill-at", "35")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert open_log(out / "coupling.h5").step.values.tolist() == [0, 10, 30]
    resumed = train(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed log" in resumed.stderr + resumed.stdout
    log, reference = open_log(out / "coupling.h5", "all"), open_log(trainer_run / "coupling.h5", "all")
    assert log.step.values.tolist() == STEPS
    assert log.train_step.values.tolist() == list(range(60))  # every step once: rows past step 30 were dropped
    differences = max_differences(log, reference)
    assert max(differences.values()) <= TOLERANCE, {k: v for k, v in differences.items() if v > TOLERANCE}


def test_two_ranks_under_torchrun_equal_coupling_analyze_on_their_checkpoints(analyze, tmp_path):
    out = tmp_path / "torchrun"
    p = train(out, torchrun=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "measures alone" not in p.stderr
    log = open_log(out / "coupling.h5")
    assert log.attrs["world_size"] == 2 and log.step.values.tolist() == STEPS
    reference = open_log(analyze_run(analyze, out, tmp_path / "analyze.h5"))
    differences = max_differences(log, reference)
    assert max(differences.values()) <= TOLERANCE, {k: v for k, v in differences.items() if v > TOLERANCE}


def test_checkpoints_schedule_follows_the_trainers_save_steps(tmp_path):
    import torch
    import transformers

    import tiny_trainer
    from coupling.hf import CouplingCallback

    text = tiny_trainer.kjv_bytes()
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=20, per_device_train_batch_size=4,
                                          save_strategy="steps", save_steps=8, logging_steps=5, report_to=[],
                                          use_cpu=True, disable_tqdm=True)
    trainer = transformers.Trainer(model=tiny_trainer.model(), args=args, train_dataset=tiny_trainer.Windows(text))
    CouplingCallback(tmp_path / "coupling.h5", tiny_trainer.probe_ids(text), schedule="checkpoints").attach(trainer)
    trainer.train()
    ds = open_log(tmp_path / "coupling.h5", "all")
    assert ds.step.values.tolist() == [0, 8, 16, 20]  # step 0 and the last step always
    # The Trainer's logged losses: every 5 updates, and at the measured steps, where the callback asks it to log.
    assert ds.train_step.values.tolist() == [4, 7, 9, 14, 15, 19]
    assert torch.isfinite(torch.from_numpy(ds.train_loss.values)).all()
