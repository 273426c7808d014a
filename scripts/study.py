"""Collects a coupling study (scripts/study.sh) and correlates held-out loss with each predictor.

Usage: study.py STUDY_DIR
Reads every member directory (summary.json, config.toml, coupling.h5) and writes
  STUDY_DIR/study.csv  one row per member: val_loss, params, depth, width, lr, steps, and the
                       final coupling summaries (depth m_K mean off-diagonal and adjacent, ujv/norm,
                       for each K), line-shape score, norm growth rate
  STUDY_DIR/study.h5   /members (one dataset per column) and /correlations (per predictor:
                       pearson_r, pearson_p, spearman_rho, spearman_p, r2, n = members where
                       the predictor is defined: 1-block models have no coupling)
and prints the correlation table. Lower m_K = more coupled.
"""
import csv
import json
import math
import os
import sys

import h5py
import numpy as np
from scipy import stats

UJV, NORM = 0, 0


def read_toml(path):
    values = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            values[key] = value.strip("'\"")
    return values


def member(directory):
    summary = json.load(open(os.path.join(directory, "summary.json")))
    config = read_toml(os.path.join(directory, "config.toml"))
    row = {
        "member": os.path.basename(directory),
        "val_loss": summary["val_loss"],
        "params": summary["parameters"],
        "log_params": math.log(summary["parameters"]),
        "depth": int(config["layers"]),
        "width": int(config["d-model"]),
        "lr": float(config["lr"]),
        "steps": int(config["steps"]),
    }
    with h5py.File(os.path.join(directory, "coupling.h5"), "r") as f:
        m = f["measurement"]
        for r, k in enumerate(m["k"][:]):
            row[f"m_offdiag_K{k}"] = float(m["depth_mean_offdiag_avg"][-1, UJV, NORM, r])
            row[f"m_adjacent_K{k}"] = float(m["depth_mean_adjacent_avg"][-1, UJV, NORM, r])
        row["lss"] = float(np.mean(m["line_shape_score"][-1]))
        row["norm_growth_rate"] = float(np.mean(m["norm_growth_rate"][-1]))
    return row


def main():
    root = sys.argv[1]
    rows = [member(os.path.join(root, d)) for d in sorted(os.listdir(root))
            if os.path.isfile(os.path.join(root, d, "summary.json"))]
    if len(rows) < 3:
        sys.exit(f"study.py: {root} holds {len(rows)} finished members; correlations need at least 3")
    columns = list(rows[0])
    with open(os.path.join(root, "study.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    loss = np.array([r["val_loss"] for r in rows])
    predictors = [c for c in columns if c not in ("member", "val_loss", "params", "steps")]
    table = []
    for name in predictors:
        x = np.array([r[name] for r in rows], dtype=float)
        ok = np.isfinite(x)  # coupling is undefined (NaN) for a 1-block member: no block pairs
        if ok.sum() < 3 or np.ptp(x[ok]) == 0:
            continue
        pearson = stats.pearsonr(x[ok], loss[ok])
        spearman = stats.spearmanr(x[ok], loss[ok])
        table.append((name, pearson[0], pearson[1], spearman[0], spearman[1], pearson[0] ** 2, int(ok.sum())))
    with h5py.File(os.path.join(root, "study.h5"), "w") as f:
        f.attrs["members"] = len(rows)
        g = f.create_group("members")
        g["member"] = np.array([r["member"] for r in rows], dtype=h5py.string_dtype())
        for c in columns[1:]:
            g[c] = np.array([r[c] for r in rows], dtype=float)
        c = f.create_group("correlations")
        c["predictor"] = np.array([t[0] for t in table], dtype=h5py.string_dtype())
        for i, key in enumerate(("pearson_r", "pearson_p", "spearman_rho", "spearman_p", "r2", "n"), start=1):
            c[key] = np.array([t[i] for t in table])
    print(f"held-out loss vs each predictor over {len(rows)} members (val_loss {loss.min():.4f}..{loss.max():.4f}):")
    print(f"{'predictor':22s} {'pearson r':>10s} {'p':>8s} {'spearman':>9s} {'p':>8s} {'R^2':>6s} {'n':>3s}")
    for name, r, p, rho, sp, r2, n in sorted(table, key=lambda t: -t[5]):
        print(f"{name:22s} {r:10.3f} {p:8.3f} {rho:9.3f} {sp:8.3f} {r2:6.3f} {n:3d}")
    print(f"study.py: wrote {root}/study.csv and {root}/study.h5")


if __name__ == "__main__":
    main()
