"""Compares the pretrained all-MiniLM-L6-v2 with its random inits (scripts/minilm_study.sh).

Usage: minilm_study.py OUT_DIR          (coupling-minilm-study, or scripts/minilm_study.py)
Reads OUT_DIR/all-minilm-l6-v2.h5 and OUT_DIR/all-minilm-l6-v2-init-seed{1,2,3}.h5 (coupling-analyze
logs, one step each; from schema 4 on with the uncoupled null of each m_K), and NAME-linearity.h5 when
present (layer linearity over 32 probes) and prints a markdown table: per metric, the pretrained value, the inits'
mean ± sample sd over the seeds, which is lower, and the difference in units of that sd. Every
value is the mean over probes and measured tokens. The paper's claim is that training lowers
m_K (more coupling) and brings LSS towards 1 (straighter trajectories). Reads through coupling.log
(h5py + numpy only), so it runs under the venv and under Debian's python3.
"""
import argparse
import os
import sys

import numpy as np

from coupling import log

PRETRAINED = "all-minilm-l6-v2"
INITS = ["all-minilm-l6-v2-init-seed%d" % s for s in (1, 2, 3)]
# the datasets read (through coupling.log; their dimension scales come with them)
READ = ("step", "depth_mean_offdiag", "depth_mean_offdiag_null", "line_shape_score", "norm_growth_rate",
        "residual_norms", "norm_growth_r2", "singular_values", "measure_seconds", "layer_linearity")


def read_metrics(path):
    """(metric name -> mean over probes and tokens, info line) of a log's single measurement."""
    try:
        with log.open_file(path) as f:
            m = log.arrays(f, "measurement", variables=READ)
    except OSError as e:  # LogError included
        sys.exit("minilm_study: %s" % e)
    if m["step"].shape[0] != 1:
        sys.exit("minilm_study: %s holds %d measurements, expected 1" % (path, m["step"].shape[0]))
    orientation, normalisation = list(m["orientation"]), list(m["normalisation"])
    norm = normalisation.index("norm")
    coupling = m["depth_mean_offdiag"][0]  # [probe, token, orientation, normalisation, k]
    metrics = []
    for oname in ("ujv", "vju"):
        for i, k in enumerate(m["k"]):
            metrics.append(("depth m_%d, %s" % (k, oname), coupling[:, :, orientation.index(oname), norm, i]))
            if "depth_mean_offdiag_null" in m:  # schema 4 on: the same mean for Haar-random bases
                null = m["depth_mean_offdiag_null"][0]
                metrics.append(("  its uncoupled null", null[:, :, orientation.index(oname), norm, i]))
    metrics.append(("LSS (1 = straight)", m["line_shape_score"][0]))
    metrics.append(("LSS / sqrt(L) (1 = random walk)", m["line_shape_score"][0] / np.sqrt(len(m["layer"]))))
    metrics.append(("norm growth rate b (nats/block)", m["norm_growth_rate"][0]))
    # A post-LN model with unit LayerNorm gains (BERT at init) has ||x^l|| = sqrt(d) at every
    # state: b is then 0 and R^2 a fit to rounding noise, so R^2 counts as undefined there.
    norms = m["residual_norms"][0]  # [probe, token, state]
    flat = np.ptp(norms, axis=-1) <= 1e-6 * norms.mean(axis=-1)
    metrics.append(("R^2 of the norm fit", np.where(flat, np.nan, m["norm_growth_r2"][0])))
    top = m["singular_values"][0][..., :3].mean(axis=(0, 1, 2))  # s_1..s_3 of J^l_tt, mean
    info = "%d probes, tokens %s, K %s, %.0f s; mean s_1..s_3 of the block Jacobians %s" % (
        m["probe"].shape[0], [int(t) for t in m["token"]], [int(k) for k in m["k"]],
        m["measure_seconds"][0], " ".join("%.3f" % v for v in top))
    bad = sum(int(np.sum(~np.isfinite(v))) for _, v in metrics) - int(flat.sum())
    if bad:
        info += "; %d NON-FINITE values (left out of the means)" % bad
    if flat.any():
        info += "; %d of %d trajectories keep a constant norm (R^2 undefined)" % (flat.sum(), flat.size)
    means = [(name, float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")) for name, v in metrics]
    return means, info


def read_linearity(path):
    """(metric, mean over blocks of layer_linearity) of a linearity log (minilm_study.sh's 32-probe run), and its
    info line; None when the log does not exist."""
    if not os.path.exists(path):
        return None
    try:
        with log.open_file(path) as f:
            m = log.arrays(f, "measurement", variables=("step", "layer_linearity"))
            tokens = dict(f["measurement"].attrs).get("linearity_tokens")
    except OSError as e:
        sys.exit("minilm_study: %s" % e)
    values = m["layer_linearity"][0]
    return (("layer linearity, mean over blocks (%s tokens)" % tokens, float(values.mean())),
            "layer linearity per block %s" % " ".join("%.4f" % v for v in values))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", metavar="OUT_DIR", help="the directory minilm_study.sh wrote its logs to")
    out = parser.parse_args(argv).out
    runs = {}
    for name in [PRETRAINED] + INITS:
        runs[name], info = read_metrics(os.path.join(out, name + ".h5"))
        linearity = read_linearity(os.path.join(out, name + "-linearity.h5"))
        if linearity:
            runs[name].append(linearity[0])
            info += "; " + linearity[1]
        print("%s: %s" % (name, info))
    print()
    print("| metric | pretrained | init (3 seeds) mean ± sd | lower | (pretrained - init) / sd |")
    print("|---|---|---|---|---|")
    for row, (metric, pre) in enumerate(runs[PRETRAINED]):
        inits = np.array([runs[name][row][1] for name in INITS])
        mean, sd = inits.mean(), inits.std(ddof=1)
        if not np.isfinite([pre, mean]).all():
            lower = "n/a"
        elif abs(pre - mean) <= 1e-9:
            lower = "equal"
        else:
            lower = "pretrained" if pre < mean else "init"
        z = "%+.1f" % ((pre - mean) / sd) if sd > 1e-6 and np.isfinite(pre) else "n/a"  # metrics are O(0.01-1)
        init = "%.4f ± %.4f" % (mean, sd) if np.isfinite(mean) else "undefined"
        print("| %s | %.4f | %s | %s | %s |" % (metric, pre, init, lower, z))


if __name__ == "__main__":
    sys.exit(main())
