"""Checks that two coupling logs agree on the steps they share (tests/cli/analyze.sh).

Usage: compare_logs.py LOG_A LOG_B STEPS
STEPS: comma-separated steps both logs must hold. Compares the depth coupling summaries, the
line-shape scores and the singular values at those steps (relative 1e-4).
"""
import sys

import h5py
import numpy as np


def rows(f, steps):
    have = list(f["measurement/step"][:])
    missing = [s for s in steps if s not in have]
    assert not missing, f"{f.filename} lacks steps {missing} (has {have})"
    return [have.index(s) for s in steps]


def main():
    steps = [int(s) for s in sys.argv[3].split(",")]
    with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
        ra, rb = rows(a, steps), rows(b, steps)
        worst = 0.0
        for name in ("depth_mean_offdiag", "line_shape_score", "singular_values"):
            x, y = a[f"measurement/{name}"][ra], b[f"measurement/{name}"][rb]
            worst = max(worst, float(np.abs(x - y).max() / (np.abs(x).max() + 1e-12)))
        assert worst < 1e-4, f"the logs differ by {worst} (relative)"
    print(f"steps {steps} agree to {worst:.1e} (relative)")


if __name__ == "__main__":
    main()
