"""coupling.Monitor in a hand-written loop: the schedule, /train rows, resume from its state_dict."""
import numpy as np
import torch
from conftest import max_differences
from test_measure import gpt2, probe_ids

from coupling.log import open_log
from coupling.monitor import Monitor

STEPS = 12


def run(log, stop=STEPS, start=0, state=None):
    """A plain loop over a tiny GPT-2: the same batches and model at every step, whatever the session."""
    model = gpt2()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(1, STEPS + 1):  # updates before `start` are replayed to rebuild the model
        batch = torch.randint(0, 64, (4, 8), generator=torch.Generator().manual_seed(step))
        if step == start + 1:
            monitor = Monitor(log, model, probe_ids(), total_steps=STEPS, schedule="every:4", start_step=start,
                              state=state)
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step > start:
            monitor.step(step, loss.item(), 0.05)
        if step == stop:
            assert monitor.overhead_fraction() > 0  # measurements and training both took time
            saved = monitor.state_dict()
            monitor.close()
            return saved
    raise AssertionError("unreachable")


def test_schedule_rows_and_resume(tmp_path):
    whole = tmp_path / "whole.h5"
    run(whole)
    ds = open_log(whole, "all")
    assert ds.step.values.tolist() == [0, 4, 8, 12]
    assert ds.train_step.values.tolist() == list(range(STEPS)) and np.isfinite(ds.train_loss.values).all()
    # Stopped after step 6 with its state saved, then resumed at step 6.
    parts = tmp_path / "parts.h5"
    state = run(parts, stop=6)
    assert open_log(parts).step.values.tolist() == [0, 4]
    run(parts, start=6, state=state)
    resumed = open_log(parts, "all")
    assert resumed.train_step.values.tolist() == list(range(STEPS))
    differences = max_differences(resumed, ds)
    assert max(differences.values()) <= 1e-5, differences


def test_two_ranks_share_the_probes_or_rank_0_measures_alone(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import HERE

    def run(log, *flags):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                   os.path.join(HERE, "two_ranks_monitor.py"), str(log), *flags]
        p = subprocess.run(command, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        return p.stdout + p.stderr

    shared = run(tmp_path / "shared.h5")
    alone = run(tmp_path / "alone.h5", "--refuse-group")
    assert "measures alone" not in shared and "rank 0 measures alone" in alone
    a, b = open_log(tmp_path / "shared.h5", "all"), open_log(tmp_path / "alone.h5", "all")
    assert a.attrs["world_size"] == 2 and b.attrs["world_size"] == 1
    assert a.step.values.tolist() == b.step.values.tolist() == [0, 2, 4]
    differences = max_differences(a, b)
    assert max(differences.values()) <= 1e-5, differences
