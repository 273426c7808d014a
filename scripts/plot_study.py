"""Scatter plots of a coupling study: held-out loss against each predictor (scripts/study.sh).

Usage: plot_study.py STUDY_DIR
Reads STUDY_DIR/study.h5 (scripts/study.py) and writes STUDY_DIR/study_<predictor>.png, each
titled with its Pearson r and Spearman rho.
"""
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    root = sys.argv[1]
    with h5py.File(os.path.join(root, "study.h5"), "r") as f:
        members = f["members"]
        loss = members["val_loss"][:]
        names = [n.decode() if isinstance(n, bytes) else n for n in f["correlations/predictor"][:]]
        r, rho = f["correlations/pearson_r"][:], f["correlations/spearman_rho"][:]
        for i, name in enumerate(names):
            fig, ax = plt.subplots(figsize=(4.5, 3.5))
            ax.scatter(members[name][:], loss)
            ax.set_xlabel(name)
            ax.set_ylabel("held-out loss (nats/byte)")
            ax.set_title(f"r = {r[i]:.2f}, rho = {rho[i]:.2f}", fontsize=10)
            fig.tight_layout()
            fig.savefig(os.path.join(root, f"study_{name}.png"), dpi=100)
            plt.close(fig)
    print(f"plot_study: wrote {len(names)} scatter plots to {root}")


if __name__ == "__main__":
    main()
