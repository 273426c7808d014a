"""Checks that two coupling logs agree on the steps they share (tests/cli/analyze.sh).

Usage: compare_logs.py LOG_A LOG_B STEPS [--bitwise STEP | --every-field RTOL | --every-field-scale RTOL]
STEPS: comma-separated steps both logs must hold. Compares the depth coupling summaries, the
line-shape scores and the singular values at those steps (relative 1e-4). With --bitwise, every
measured field of both logs at STEP must be identical, bit for bit (the same model, probes,
options and thread count give the same arithmetic). With --every-field, every measured field
at STEPS must agree element by element to RTOL relative (NaN where the other has NaN); with
--every-field-scale, to RTOL times the field's largest magnitude (for logs of two BLAS builds,
whose float32 round-off differs: entries that are zero in exact arithmetic, such as m_K of a
Jacobian in its own basis, hold only round-off, so no element-wise relative bound holds).
"""
import sys

import h5py
import numpy as np


def rows(f, steps):
    have = list(f["measurement/step"][:])
    missing = [s for s in steps if s not in have]
    assert not missing, f"{f.filename} lacks steps {missing} (has {have})"
    return [have.index(s) for s in steps]


# Differ between runs of the same arithmetic (row_crc32 covers the times too).
BOOKKEEPING = {"step", "scheduled_step", "tokens_seen", "wall_seconds", "measure_seconds", "train_seconds",
               "peak_rss_mib", "row_crc32"}


def bitwise(a, b, step):
    ra, rb = rows(a, [step])[0], rows(b, [step])[0]
    names = [n for n, ds in a["measurement"].items()
             if not h5py.h5ds.is_scale(ds.id) and n not in BOOKKEEPING]
    for name in names:
        x, y = a[f"measurement/{name}"][ra], b[f"measurement/{name}"][rb]
        assert np.array_equal(x, y, equal_nan=True), f"{name} differs at step {step}"
    return len(names)


def every_field(a, b, steps, rtol, of_scale=False):
    ra, rb = rows(a, steps), rows(b, steps)
    names = [n for n, ds in a["measurement"].items()
             if not h5py.h5ds.is_scale(ds.id) and n not in BOOKKEEPING]
    assert set(names) <= set(b["measurement"].keys()), f"{b.filename} lacks {set(names) - set(b['measurement'].keys())}"
    worst = 0.0
    for name in names:
        x = a[f"measurement/{name}"][ra].astype(np.float64)
        y = b[f"measurement/{name}"][rb].astype(np.float64)
        assert np.array_equal(np.isnan(x), np.isnan(y)), f"{name}: NaN in different places"
        ok = ~np.isnan(x)
        scale = np.abs(x[ok]).max(initial=0.0) if of_scale else np.abs(x[ok])
        error = np.abs(x[ok] - y[ok]) / np.maximum(scale, 1e-300)
        error = error[np.abs(x[ok] - y[ok]) > 0]
        if error.size:
            worst = max(worst, float(error.max()))
        assert not error.size or error.max() <= rtol, f"{name} differs by {error.max():.2e} relative (> {rtol})"
    return len(names), worst


def main():
    steps = [int(s) for s in sys.argv[3].split(",")]
    with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
        for flag, of_scale, what in (("--every-field", False, "relative"),
                                     ("--every-field-scale", True, "of each field's largest magnitude")):
            if flag in sys.argv:
                rtol = float(sys.argv[sys.argv.index(flag) + 1])
                count, worst = every_field(a, b, steps, rtol, of_scale)
                print(f"steps {steps}: {count} fields agree element by element to {worst:.1e} ({what}, <= {rtol})")
                return
        if "--bitwise" in sys.argv:
            step = int(sys.argv[sys.argv.index("--bitwise") + 1])
            print(f"step {step}: {bitwise(a, b, step)} fields identical, bit for bit;", end=" ")
        ra, rb = rows(a, steps), rows(b, steps)
        worst = 0.0
        for name in ("depth_mean_offdiag", "line_shape_score", "singular_values"):
            x, y = a[f"measurement/{name}"][ra], b[f"measurement/{name}"][rb]
            worst = max(worst, float(np.abs(x - y).max() / (np.abs(x).max() + 1e-12)))
        assert worst < 1e-4, f"the logs differ by {worst} (relative)"
    print(f"steps {steps} agree to {worst:.1e} (relative)")


if __name__ == "__main__":
    main()
