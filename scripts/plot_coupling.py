#!/usr/bin/python3
"""Plots a libcoupling HDF5 log (docs/hdf5-schema.md) and prints a step-0 vs final table.

Usage: scripts/plot_coupling.py LOG.h5 [--out DIR] [--summary summary.json] [--live [SECONDS]]

Writes PNGs into DIR (default: the log's directory):
  depth_heatmaps.png   depth-coupling matrices m_K at init / middle / final step
  coupling_vs_step.png mean off-diagonal m_K (and depth-local |i-j|=1) against step, every K
  lss_vs_step.png      line-shape score against step
  norms_vs_depth.png   ||x^l|| against depth (log axis) at several steps, with the log-linear fit
  sigma_vs_depth.png   s_1(J^l) against depth at several steps
  loss_vs_step.png     training and validation loss against step
  overhead.png         seconds per measurement, training seconds between measurements, and the
                       run's overhead so far (measurement time / training time)
and, for schema-2 logs that hold them (token coupling needs at least two measured tokens, context
coupling needs context pairs):
  token_heatmaps.png   token-coupling matrices m_K (ujv, norm, smallest K, mean over probes) at the
                       final step, one panel per block, trivial diagonal masked
  token_coupling_vs_step.png  mean off-diagonal token m_K against step, every K, and likewise the
                       block-by-token and context (same input / same output) means
--live re-reads the (SWMR) log every SECONDS (default 30) while a run writes it; Ctrl-C stops.
Reads with h5py in SWMR mode, so it works on a log that a training run is still writing.
"""
import argparse
import json
import os
import sys
import time

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coupling_log  # noqa: E402

UJV, NORM = 0, 0
# per-step coupling matrices that can be large (schema 2): not read whole, the plots use their summaries
MATRICES = ("token_coupling", "block_token_coupling", "context_coupling")


def load(path):
    with h5py.File(path, "r", swmr=True, libver="latest") as f:
        m = f["measurement"]
        if "step" not in m or m["step"].shape[0] == 0:
            return None
        data = {name: m[name][()] for name in m if name not in MATRICES}
        if "token_coupling" in m and m["token_coupling"].shape[0] > 0:
            # the final row holding token coupling (a live log's columns may differ by a row)
            row = min(m["token_coupling"].shape[0], data["step"].shape[0]) - 1
            data["token_coupling_final"] = m["token_coupling"][row, :, :, UJV, NORM, 0]  # [P, L, n, n]
            data["token_coupling_step"] = data["step"][row]
        data["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        for group in ("train", "eval"):
            data[group] = {name: f[group][name][()] for name in f[group]}
        return data


def pick_steps(steps, count=4):
    idx = np.unique(np.linspace(0, len(steps) - 1, min(count, len(steps))).round().astype(int))
    return idx


def save(fig, out, name):
    if not fig.get_constrained_layout():
        fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=90)
    plt.close(fig)


def step_axis(ax):
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("training step (updates, symlog)")


def variant_lines(ax, d, name, steps, ks):
    """One line per K for ujv/norm (solid) and ujv/trace (dashed) of a [step, o, n, k] summary."""
    values = d[name][:len(steps)]
    for r, k in enumerate(ks):
        line, = ax.plot(steps[:len(values)], values[:, UJV, NORM, r], marker="o", label=f"K={k} ujv/norm")
        ax.plot(steps[:len(values)], values[:, UJV, 1, r], marker=".", linestyle="--", color=line.get_color(),
                label=f"K={k} ujv/trace")
    step_axis(ax)
    ax.set_ylabel("m_K (lower = more coupled)")
    ax.legend(fontsize=7)


def plot_token_heatmaps(d, out, title):
    """token_heatmaps.png: ujv / norm / smallest K token-coupling matrix per block, final step."""
    tc = d["token_coupling_final"].mean(axis=0)  # [L, n, n], mean over probes
    L, n = tc.shape[0], tc.shape[1]
    masked = np.ma.masked_array(tc, mask=np.broadcast_to(np.eye(n, dtype=bool), tc.shape))
    masked = np.ma.masked_invalid(masked)
    rows = int(np.ceil(L / max(4, np.ceil(np.sqrt(L)))))  # at most max(4, sqrt L) panels a row, balanced
    cols = int(np.ceil(L / rows))
    size = min(4.0, max(2.6, 0.25 * n))
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 1.2, size * rows + 0.8), squeeze=False,
                             layout="constrained")
    cmap = matplotlib.colormaps["viridis_r"].with_extremes(bad="0.85")  # the masked diagonal in grey
    vmax = masked.max() if masked.count() else 1.0
    tokens = d["token"]
    every = max(1, int(np.ceil(n / 16)))  # at most ~16 tick labels per axis
    ticks = range(0, n, every)
    for l in range(rows * cols):
        ax = axes[l // cols][l % cols]
        if l >= L:
            ax.axis("off")
            continue
        im = ax.imshow(masked[l], vmin=0, vmax=vmax, cmap=cmap)
        ax.set_title(f"block {d['layer'][l]}")
        ax.set_xticks(ticks, [str(tokens[i]) for i in ticks], rotation=90 if n > 8 else 0, fontsize=7)
        ax.set_yticks(ticks, [str(tokens[i]) for i in ticks], fontsize=7)
        if l // cols == rows - 1 or l + cols >= L:
            ax.set_xlabel("basis token position")
        if l % cols == 0:
            ax.set_ylabel("token position")
    fig.colorbar(im, ax=axes, shrink=0.8, label="m_K (lower = more coupled)")
    fig.suptitle(f"{title}\ntoken coupling m_K (ujv, norm, K={d['k'][0]}) at step {d['token_coupling_step']}, "
                 "mean over probes, diagonal masked", fontsize=10)
    save(fig, out, "token_heatmaps.png")


def plot_token_vs_step(d, out, title):
    """token_coupling_vs_step.png: the token / block-token / context summaries against step."""
    steps, ks = d["step"], d["k"]
    panels = [(name, label) for name, label in (
        ("token_mean_offdiag_avg", "token coupling: same block, tokens i != j"),
        ("block_token_mean_offdiag_avg", "block-by-token coupling: all (block, token) pairs"),
        ("context_same_input_avg", "context coupling: same input t1"),
        ("context_same_output_avg", "context coupling: same output t2")) if name in d]
    cols = min(2, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for i, (name, label) in enumerate(panels):
        ax = axes[i // cols][i % cols]
        variant_lines(ax, d, name, steps, ks)
        ax.set_title(f"{label}, mean off-diagonal" if "offdiag" in name else label, fontsize=9)
    for i in range(len(panels), rows * cols):
        axes[i // cols][i % cols].axis("off")
    fig.suptitle(f"{title}\ntoken and context coupling, averaged over probes", fontsize=10)
    save(fig, out, "token_coupling_vs_step.png")


def plot_all(d, out, title):
    """Writes the figures; returns their file names."""
    steps, ks, L = d["step"], d["k"], d["layer"].shape[0]
    os.makedirs(out, exist_ok=True)
    # depth heatmaps: ujv / norm, averaged over probes and tokens
    depth = d["depth_coupling"][:, :, :, UJV, NORM].mean(axis=(1, 2))  # [S, nK, L, L]
    chosen = pick_steps(steps, 3)
    fig, axes = plt.subplots(len(ks), len(chosen), figsize=(3.6 * len(chosen), 3.2 * len(ks)), squeeze=False)
    vmax = np.nanmax(depth) if np.isfinite(depth).any() else 1.0
    for r, k in enumerate(ks):
        for c, s in enumerate(chosen):
            im = axes[r][c].imshow(depth[s, r], vmin=0, vmax=vmax, cmap="viridis_r")
            axes[r][c].set_title(f"step {steps[s]}, K={k}")
            axes[r][c].set_xlabel("basis layer j")
            axes[r][c].set_ylabel("layer i")
            axes[r][c].set_xticks(range(L), d["layer"])
            axes[r][c].set_yticks(range(L), d["layer"])
            fig.colorbar(im, ax=axes[r][c], fraction=0.046, label="m_K (lower = more coupled)")
    fig.suptitle(f"{title}: depth coupling m_K (ujv, norm)")
    save(fig, out, "depth_heatmaps.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, ax, label in (("depth_mean_offdiag_avg", axes[0], "mean off-diagonal"),
                            ("depth_mean_adjacent_avg", axes[1], "depth-local |i-j|=1")):
        for r, k in enumerate(ks):
            ax.plot(steps, d[name][:, UJV, NORM, r], marker="o", label=f"K={k} ujv/norm")
            ax.plot(steps, d[name][:, UJV, 1, r], marker=".", linestyle="--", label=f"K={k} ujv/trace")
        step_axis(ax)
        ax.set_ylabel("m_K (lower = more coupled)")
        ax.set_title(f"depth coupling, {label}")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    save(fig, out, "coupling_vs_step.png")

    lss = d["line_shape_score"].reshape(len(steps), -1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, lss.mean(1), marker="o", label="mean over probes")
    ax.fill_between(steps, lss.min(1), lss.max(1), alpha=0.2, label="min-max")
    step_axis(ax)
    ax.set_ylabel("line-shape score (1 = straight)")
    ax.set_title(f"{title}: trajectory linearity")
    ax.legend()
    save(fig, out, "lss_vs_step.png")

    norms = d["residual_norms"].mean(axis=(1, 2))  # [S, L+1]
    fig, ax = plt.subplots(figsize=(6, 4))
    depth_axis = d["state"]
    for s in pick_steps(steps, 4):
        line, = ax.plot(depth_axis, norms[s], marker="o", label=f"step {steps[s]}")
        b, a = np.polyfit(depth_axis, np.log(norms[s]), 1)
        ax.plot(depth_axis, np.exp(a + b * depth_axis), linestyle=":", color=line.get_color(),
                label=f"fit x{np.exp(b):.2f}/block")
    ax.set_yscale("log")
    ax.set_xlabel("residual state l (0 = embedding)")
    ax.set_ylabel("||x^l|| (mean over probes)")
    ax.set_title(f"{title}: norm growth with depth")
    ax.legend(fontsize=7)
    save(fig, out, "norms_vs_depth.png")

    sigma = d["singular_values"][..., 0].mean(axis=(1, 2))  # [S, L]
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in pick_steps(steps, 4):
        ax.plot(d["layer"], sigma[s], marker="o", label=f"step {steps[s]}")
    ax.set_xlabel("block l")
    ax.set_ylabel("s_1(J^l) (mean over probes)")
    ax.set_title(f"{title}: top singular value by depth")
    ax.legend(fontsize=7)
    save(fig, out, "sigma_vs_depth.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    if len(d["train"]["step"]):
        ax.plot(d["train"]["step"] + 1, d["train"]["loss"], alpha=0.5, label="train (batch)")
    if len(d["eval"]["step"]):
        ax.plot(d["eval"]["step"], d["eval"]["val_loss"], marker="o", label="held-out")
    step_axis(ax)
    ax.set_ylabel("loss (nats per token / per image)")
    ax.set_title(f"{title}: loss")
    ax.legend()
    save(fig, out, "loss_vs_step.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(range(len(steps)), d["measure_seconds"], label="measurement (s)")
    ax.plot(range(len(steps)), d["train_seconds"], color="C1", marker="o", label="training since previous (s)")
    ax.set_xticks(range(len(steps)), steps, rotation=60, fontsize=7)
    ax.set_xlabel("measurement step")
    ax.set_ylabel("seconds")
    ax.set_title(f"{title}: measurement overhead")
    # The run's overhead so far: measurement time / training time (schema 2: train_seconds
    # exclude measurements; a schema-1 log's include the previous measurement).
    training = np.cumsum(d["train_seconds"])
    overhead = np.divide(np.cumsum(d["measure_seconds"]), training, out=np.full(len(training), np.nan),
                         where=training > 0)
    right = ax.twinx()
    right.plot(range(len(steps)), overhead, color="C2", marker=".", label="overhead so far (measure / train)")
    right.set_ylabel("measurement time / training time")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper center")
    save(fig, out, "overhead.png")
    written = ["depth_heatmaps.png", "coupling_vs_step.png", "lss_vs_step.png", "norms_vs_depth.png",
               "sigma_vs_depth.png", "loss_vs_step.png", "overhead.png"]
    if "token_coupling_final" in d:  # schema 2 with at least two measured tokens
        plot_token_heatmaps(d, out, title)
        written.append("token_heatmaps.png")
    if "token_mean_offdiag_avg" in d or "context_same_input_avg" in d:
        plot_token_vs_step(d, out, title)
        written.append("token_coupling_vs_step.png")
    return written


def table(d, summary):
    steps, ks = d["step"], d["k"]
    rows = []
    for r, k in enumerate(ks):
        rows.append((f"depth m_K ujv/norm mean off-diag, K={k}", d["depth_mean_offdiag_avg"][:, UJV, NORM, r]))
        rows.append((f"depth m_K ujv/norm |i-j|=1, K={k}", d["depth_mean_adjacent_avg"][:, UJV, NORM, r]))
    if "token_mean_offdiag_avg" in d:
        for r, k in enumerate(ks):
            rows.append((f"token m_K ujv/norm mean off-diag, K={k}", d["token_mean_offdiag_avg"][:, UJV, NORM, r]))
    rows.append(("line-shape score (1 = straight)", d["line_shape_score"].reshape(len(steps), -1).mean(1)))
    rows.append(("norm growth rate b (log||x^l|| per block)", d["norm_growth_rate"].reshape(len(steps), -1).mean(1)))
    rows.append(("norm growth fit R^2", d["norm_growth_r2"].reshape(len(steps), -1).mean(1)))
    print(f"{'metric':46s} {'step ' + str(steps[0]):>12s} {'step ' + str(steps[-1]):>12s}")
    for label, values in rows:
        print(f"{label:46s} {values[0]:12.4f} {values[-1]:12.4f}")
    measured = d["measure_seconds"].sum()
    print(f"{'measurements':46s} {len(steps):12d} {measured:11.1f}s")
    if summary and "bigram_val_loss" in summary:  # GPT
        print(f"{'val_loss / bigram_val_loss (nats per byte)':46s} {summary['val_loss']:12.4f} "
              f"{summary['bigram_val_loss']:12.4f}")
    if summary and "test_accuracy" in summary:  # ViT
        print(f"{'test accuracy / test loss (nats per image)':46s} {summary['test_accuracy']:12.4f} "
              f"{summary['test_loss']:12.4f}")
    if summary:
        print(f"{'measurement overhead (measure / train time)':46s} {summary['overhead_fraction']:12.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log")
    parser.add_argument("--out")
    parser.add_argument("--summary", help="summary.json of the run (adds loss and overhead rows to the table)")
    parser.add_argument("--live", nargs="?", const=30.0, type=float, metavar="SECONDS")
    args = parser.parse_args()
    if not os.path.isfile(args.log):
        sys.exit(f"plot_coupling: no such log: {args.log}")
    out = args.out or os.path.dirname(os.path.abspath(args.log))
    try:
        for group, rows in coupling_log.check(args.log).items():
            print(f"plot_coupling: warning: /{group} rows {rows[:10]} do not match their row_crc32: the log is "
                  "damaged (plotted as they are)", file=sys.stderr)
    except OSError:
        pass  # not readable yet: load() below says so
    while True:
        try:
            d = load(args.log)
        except OSError as e:
            sys.exit(f"plot_coupling: cannot read {args.log} as an HDF5 log ({e})")
        if d is None:
            print("plot_coupling: no measurement in the log yet")
        else:
            title = f"{d['attrs'].get('model', 'model')} ({len(d['step'])} measurements)"
            written = plot_all(d, out, title)
            summary = None
            if args.summary and os.path.isfile(args.summary):
                with open(args.summary) as f:
                    summary = json.load(f)
            table(d, summary)
            print(f"plot_coupling: wrote {len(written)} PNGs to {out}")
        if args.live is None:
            break
        time.sleep(args.live)


if __name__ == "__main__":
    main()
