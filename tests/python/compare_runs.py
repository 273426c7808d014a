"""Compares a 1-rank and an N-rank run of the same configuration (tests/cli/data_parallel.sh).

Usage: compare_runs.py RUN_1RANK RUN_NRANK WORLD_SIZE
Checks: the training losses agree (the ranks' shards together are the single-process batch, so
only the summation order differs), the final weights agree, the coupling logs hold the same
steps and agree, and the N-rank log records its world size. Prints the largest differences.
"""
import csv
import sys

import h5py
import numpy as np
import torch

import coupling_path  # noqa: F401  (python/ on sys.path)
from coupling import safetensors as coupling_safetensors


def losses(run):
    with open(f"{run}/train_log.csv") as f:
        return np.array([float(row["loss"]) for row in csv.DictReader(f)])


def main():
    one, many, world = sys.argv[1], sys.argv[2], int(sys.argv[3])
    a, b = losses(one), losses(many)
    assert a.shape == b.shape, f"train_log rows differ: {a.shape} vs {b.shape}"
    loss_diff = np.abs(a - b).max()
    assert loss_diff < 1e-4, f"losses differ by {loss_diff}"

    step = max(int(p.name.split("_")[1]) for p in __import__("pathlib").Path(f"{one}/checkpoints").glob("step_*"))
    wa = coupling_safetensors.load_torch(f"{one}/checkpoints/step_{step}/model.safetensors")
    wb = coupling_safetensors.load_torch(f"{many}/checkpoints/step_{step}/model.safetensors")
    weight_diff = max((wa[k] - wb[k]).abs().max().item() / (wa[k].abs().max().item() + 1e-12) for k in wa)
    assert weight_diff < 1e-3, f"final weights differ by {weight_diff} (relative)"

    with h5py.File(f"{one}/coupling.h5", "r") as fa, h5py.File(f"{many}/coupling.h5", "r") as fb:
        assert fb.attrs["world_size"] == world, f"world_size attribute {fb.attrs['world_size']}, expected {world}"
        assert fa.attrs["world_size"] == 1
        sa, sb = fa["measurement/step"][:], fb["measurement/step"][:]
        assert np.array_equal(sa, sb), f"measured steps differ: {sa} vs {sb}"
        coupling_diff = 0.0
        for name in ("depth_mean_offdiag", "line_shape_score", "singular_values"):
            da, db = fa[f"measurement/{name}"][:], fb[f"measurement/{name}"][:]
            coupling_diff = max(coupling_diff, np.abs(da - db).max() / (np.abs(da).max() + 1e-12))
        assert coupling_diff < 1e-3, f"coupling measurements differ by {coupling_diff} (relative)"
    print(f"max |loss diff| {loss_diff:.2e}, weights {weight_diff:.2e}, measurements {coupling_diff:.2e} "
          f"over {len(a)} steps and {len(sa)} measurements")


if __name__ == "__main__":
    main()
