"""pytest for the Python engine (coupling._engine and its entry points), run by ctest in the LibTorch 2.x build
(python_engine.*): the checkout's python/ first on sys.path, coupling-analyze as the reference, and the tiny
Trainer runs (tiny_trainer.py) the tests share.

COUPLING_ANALYZE: the build's coupling-analyze (ctest sets it; else build-torch2/bin/coupling-analyze).
"""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import coupling_path  # noqa: E402

import torch  # noqa: E402

# One intra-op thread here as in coupling-analyze --threads 1 and tiny_trainer.py: the same float32 arithmetic in
# the same order on both sides of every comparison (threaded reductions differ by float32 ulps).
torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = sys.executable
# Fields that time or size the measurement rather than measure the model: they differ between any two runs.
TIMING = {"measure_seconds", "peak_rss_mib", "train_seconds", "wall_seconds", "train_wall_seconds",
          "eval_wall_seconds"}


@pytest.fixture(scope="session")
def analyze():
    path = os.environ.get("COUPLING_ANALYZE") or os.path.join(coupling_path.REPOSITORY, "build-torch2", "bin",
                                                              "coupling-analyze")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no coupling-analyze at {path}: build with scripts/build.sh --torch pip or set COUPLING_ANALYZE")
    return path


def train(out, *args, torchrun=False):
    """Runs tiny_trainer.py into `out`; returns the completed process (output captured)."""
    command = [PYTHON, os.path.join(HERE, "tiny_trainer.py"), str(out), *args]
    if torchrun:
        command = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *command[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def analyze_run(analyze, run, log):
    """coupling-analyze --hf on the run's four checkpoints (steps 0, 10, 30, 60) with its probe ids."""
    directories = [os.path.join(run, f"checkpoint-{s}") for s in (0, 10, 30, 60)]
    p = subprocess.run([analyze, "--hf", *directories, "--probe-ids", os.path.join(run, "probe_ids.txt"), "--log",
                        str(log), "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return log


@pytest.fixture(scope="session")
def trainer_run(tmp_path_factory):
    """An uninterrupted 60-step run."""
    out = tmp_path_factory.mktemp("run") / "uninterrupted"
    p = train(out)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out


def max_differences(a, b, skip=TIMING):
    """{variable: max |a - b|} over the float variables of two log Datasets (NaN where both are NaN counts 0)."""
    import numpy as np

    assert set(a.data_vars) == set(b.data_vars), set(a.data_vars) ^ set(b.data_vars)
    out = {}
    for name in a.data_vars:
        if name in skip or a[name].dtype.kind != "f":
            continue
        assert a[name].dims == b[name].dims, name
        x, y = a[name].values, b[name].values
        both_nan = np.isnan(x) & np.isnan(y)
        out[name] = float(np.max(np.where(both_nan, 0.0, np.abs(x - y)), initial=0.0))
    return out


