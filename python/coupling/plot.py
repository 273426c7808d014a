"""Plots a libcoupling HDF5 log (docs/hdf5-schema.md) and prints a step-0 vs final table.

Usage: coupling-plot LOG.h5 [--out DIR] [--format png|pdf|svg] [--dpi DPI]
                     [--summary summary.json] [--live [SECONDS]] [--readme-figure PATH]
(scripts/plot_coupling.py is the same command for Pythons without the package installed.)

Options:
  --out DIR            where the figures go (default: the log's directory)
  --format FMT         png (default), pdf or svg: every figure is written as NAME.FMT
  --dpi DPI            resolution of png figures and of raster parts of pdf/svg (default 150)
  --summary JSON       the run's summary.json: adds the final losses, the run's measurement overhead
                       and the bigram baseline (loss figure) to the output
  --live [SECONDS]     re-read the (SWMR) log every SECONDS (default 30) while a run writes it; Ctrl-C stops
  --readme-figure PATH write only the README figure to PATH (format from its extension): mean
                       off-diagonal m_K against step beside the final depth heatmap (docs/figures/demo.png:
                       scripts/plot_coupling.py runs/demo/coupling.h5 --readme-figure docs/figures/demo.png)

Figures, written into DIR:
  depth_heatmaps       depth-coupling matrices m_K (ujv, norm, mean over probes and tokens) at the first
                       step, the step of lowest mean off-diagonal m_K and the final step, every K; one
                       colour scale, the trivial diagonal (layer = basis layer) masked in grey
  coupling_vs_step     mean off-diagonal and depth-local (|i-j| = 1) m_K against step, every K; the norm lines
                       with bands: the 95% interval of the probe mean, a bootstrap over probes paired across
                       steps (coupling.intervals: where two steps' bands overlap, coupling-log --differ says
                       whether they differ); dotted, with a hatched +-2 sd band: the uncoupled null (schema
                       4 on; below it = coupled, inside it = uncoupled)
  lss_vs_step          line-shape score against step, with its 95% interval over probes (a step with a
                       non-finite value is left out, as in coupling-log's table) and the random-walk
                       reference sqrt(L)
  layer_linearity_vs_step  each block's layer linearity against step (schema 4 on; needs probes x tokens
                       > d)
  norms_vs_depth       ||x^l|| against residual state l (log axis) at several steps, with log-linear fits
  sigma_vs_depth       s_1(J^l) against block l at several steps
  loss_vs_step         training (batch) and held-out loss against step; only when the log holds losses
                       (coupling-analyze logs do not)
  overhead             the run's measurement overhead so far (measurement time / training time, both
                       cumulative) and the seconds of each measurement and training interval, against step
and, for schema-2 logs that hold them (token coupling needs at least two measured tokens, context
coupling needs context pairs):
  token_heatmaps       token-coupling matrices m_K (ujv, norm, smallest K, mean over probes) at the
                       final step, one panel per block, trivial diagonal masked
  token_coupling_vs_step  mean off-diagonal token m_K against step, every K, and likewise the
                       block-by-token and context (same input / same output) means
Step axes are symmetric-log (linear between 0 and 1, logarithmic above), so step 0 is shown.
A training-loss point of update s (0-based) is drawn at s + 1, the updates completed after it.
Orientation and normalisation codes are named from the scales' `flag_meanings` attribute when the
log has one, else ujv/vju and norm/trace.
Reads through coupling.log (h5py in SWMR mode), so it works on a log that a training run is still writing.
"""
import argparse
import json
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from coupling import intervals, log  # noqa: E402

# Positions on the orientation and normalisation axes (their scales hold 0 = ujv / norm, 1 = vju / trace).
UJV, NORM, TRACE = 0, 0, 1
# per-step coupling matrices that can be large (schema 2): not read whole, the plots use their summaries
MATRICES = ("token_coupling", "block_token_coupling", "context_coupling")
LINESTYLES = {NORM: "-", TRACE: "--"}  # line style of each normalisation
MK = "$m_K$"
MK_AXIS = f"{MK} (lower = more coupled)"
CMAP = matplotlib.colormaps["viridis_r"].with_extremes(bad="0.82")  # masked diagonal and NaN in grey
STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 10, "legend.frameon": False,
         "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42, "svg.fonttype": "path"}
# the rows of summary.json shown in the final-metrics table: key, label, whether it is a loss
SUMMARY_ROWS = (("val_loss", "held-out loss (val_loss)", True),
                ("bigram_val_loss", "byte-bigram baseline (bigram_val_loss)", True),
                ("test_loss", "test loss (test_loss)", True),
                ("train_loss", "loss on training data (train_loss)", True),
                ("test_accuracy", "test accuracy (test_accuracy)", False),
                ("train_accuracy", "training accuracy (train_accuracy)", False))


def load(path):
    """The log's arrays for the figures, read through coupling.log (complete rows only, so a live log reads too);
    None before the first measurement. Raises OSError (LogError) when the log cannot be read."""
    with log.open_file(path) as f:
        m = f["measurement"]
        if "step" not in m or m["step"].shape[0] == 0:
            return None
        data = log.arrays(f, "measurement", skip=MATRICES)
        rows = len(data["step"])
        if "token_coupling" in m and m["token_coupling"].shape[0] > 0:
            row = min(m["token_coupling"].shape[0], rows) - 1  # the final row holding token coupling
            data["token_coupling_final"] = m["token_coupling"][row, :, :, UJV, NORM, 0]  # [P, L, n, n]
            data["token_coupling_step"] = data["step"][row]
        data["codes"] = {name: [str(label) for label in data[name]] for name in ("orientation", "normalisation")}
        data["attrs"] = log.attributes(f)
        data["attrs_measurement"] = dict(m.attrs)
        for group in ("train", "eval"):
            data[group] = log.arrays(f, group) if group in f else {}
        return data


def variant(d, orientation, normalisation):
    """'ujv/norm' for the positions on the orientation and normalisation axes."""
    return f"{d['codes']['orientation'][orientation]}/{d['codes']['normalisation'][normalisation]}"


def loss_unit(model):
    return {"gpt": "nats per byte", "vit": "nats per image"}.get(model, "nats")


def pick_steps(steps, count=4):
    return np.unique(np.linspace(0, len(steps) - 1, min(count, len(steps))).round().astype(int))


def heatmap_steps(d):
    """Indices of the first step, the step of lowest mean off-diagonal m_K (smallest K; else the middle
    step) and the final step; and the lowest one's index, or None when it is the first or the final."""
    last = len(d["step"]) - 1
    series = d["depth_mean_offdiag_avg"][:, UJV, NORM, 0]
    lowest = int(np.nanargmin(series)) if np.isfinite(series).any() else None
    if lowest in (None, 0, last):
        lowest = None
    return sorted({0, last // 2 if lowest is None else lowest, last}), lowest


def save(fig, path, dpi):
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.03, metadata=_metadata(path))
    plt.close(fig)


def _metadata(path):
    """No creation date in pdf/svg, so a figure regenerated from the same log is the same file."""
    ext = os.path.splitext(path)[1].lower()
    return {".pdf": {"CreationDate": None}, ".svg": {"Date": None}}.get(ext)


def plain_number(x, _=None):
    """0.005, 0.3, 2, 40, 1,200: no 10^x or 1e+03 labels."""
    if x == 0 or abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 1e-3 else f"{x:.0e}"


def step_axis(ax, steps):
    """Symmetric-log step axis (linear on [0, 1]) with plain decade labels 0, 1, 10, 100, ..."""
    ax.set_xscale("symlog", linthresh=1, linscale=0.4)
    top = max(1, int(np.max(steps)) if len(steps) else 1)
    decades = [0] + [10 ** e for e in range(int(np.floor(np.log10(top))) + 1)]
    ax.xaxis.set_major_locator(ticker.FixedLocator(decades))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(plain_number))
    ax.xaxis.set_minor_locator(ticker.SymmetricalLogLocator(base=10, linthresh=1, subs=np.arange(2, 10)))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    if len(np.unique(steps)) > 1:
        ax.set_xlim(-0.15, top * 1.3)
    else:  # one step (a single-model analysis): the point in the middle
        ax.set_xlim(steps[0] / 2 - 0.5, steps[0] * 2 + 0.5)
    ax.set_xlabel("training step (updates, symmetric-log axis)")


class PlainLogFormatter(ticker.LogFormatter):
    """Log-axis labels as plain numbers; minor ones (2, 3, 5, ...) only where the axis spans few decades."""

    def _num_to_string(self, x, vmin, vmax):
        return plain_number(x)


def log_y(ax, values):
    """A log y axis with plain labels; one spanning less than a decade gets evenly spaced ticks
    (a log axis from 7.5 to 13 would otherwise be labelled 8, 9, 10 only)."""
    ax.set_yscale("log")
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() < 10 * values.min():
        ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=5))
        ax.yaxis.set_minor_locator(ticker.NullLocator())
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(plain_number))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        margin = max(1.05, (values.max() / values.min()) ** 0.05)  # 5% of the span on a log axis
        ax.set_ylim(values.min() / margin, values.max() * margin)
    else:
        ax.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
        ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.6)))


def integer_axis(axis):
    """Ticks at whole blocks only (the data's own 0..L or 1..L)."""
    axis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))


def legend_right(ax, handles=None, **kwargs):
    """The legend outside the axes, to the right: it never covers data."""
    if handles is not None:
        kwargs["handles"] = handles
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def k_colour(r):
    return f"C{r % 10}"


def variant_legend(ax, d, normalisations):
    """One entry per K (colour) and per normalisation (line style), outside the axes."""
    handles = [Line2D([], [], color=k_colour(r), marker="o", markersize=4, label=f"K={k}")
               for r, k in enumerate(d["k"])]
    handles += [Line2D([], [], color="0.3", linestyle=LINESTYLES[n], label=variant(d, UJV, n))
                for n in normalisations]
    if "depth_mean_offdiag_null_avg" in d:
        handles.append(Line2D([], [], color="0.3", linestyle=":", label="uncoupled null\n(norm, +-2 sd)"))
    legend_right(ax, handles)


def null_band(d, name, r):
    """(mean, sd) of the uncoupled null of the [step, orientation, normalisation, k] summary `name` (ujv, norm,
    K index r) over steps, the sd that of the probe-and-token mean (members independent under the null: sqrt of
    the summed variances over their count); None for a log without nulls (schema < 4)."""
    base = name.removesuffix("_avg")
    if base + "_null_avg" not in d or base + "_null_sd" not in d:
        return None
    sd = d[base + "_null_sd"][..., UJV, NORM, r]  # [step, probe, (token or layer)]
    members = sd.reshape(sd.shape[0], -1)
    return d[base + "_null_avg"][:, UJV, NORM, r], np.sqrt((members ** 2).sum(1)) / members.shape[1]


def variant_lines(ax, d, name, normalisations=(NORM, TRACE)):
    """One line per K and normalisation (ujv) of a [step, orientation, normalisation, k] summary; the norm lines
    get their 95% probe intervals as bands (coupling.intervals) when the log holds the per-probe field, and the
    uncoupled null (schema 4 on) as a dotted line with its +-2 sd band in the same colour."""
    steps = d["step"]
    per_probe = d.get(name.removesuffix("_avg"))  # [step, probe, (token or layer,) orientation, normalisation, k]
    for r in range(len(d["k"])):
        null = null_band(d, name, r) if NORM in normalisations else None
        if null is not None:
            mean, sd = null
            ax.fill_between(steps, mean - 2 * sd, mean + 2 * sd, color=k_colour(r), alpha=0.10, linewidth=0,
                            hatch="...")
            ax.plot(steps, mean, color=k_colour(r), linestyle=":", linewidth=1.0)
        for n in normalisations:
            if n == NORM and per_probe is not None:
                values = per_probe[..., UJV, n, r]
                _, low, high = intervals.probe_intervals(values.reshape(values.shape[0], values.shape[1], -1).mean(-1))
                ax.fill_between(steps, low, high, color=k_colour(r), alpha=0.18, linewidth=0)
            ax.plot(steps, d[name][:, UJV, n, r], color=k_colour(r), linestyle=LINESTYLES[n],
                    marker="o" if n == NORM else ".", markersize=4 if n == NORM else 3, linewidth=1.2)
    step_axis(ax, steps)
    ax.set_ylabel(MK_AXIS)


def without_diagonal(matrices):
    """The matrices [..., n, n] with their trivial diagonal set to NaN (drawn grey)."""
    n = matrices.shape[-1]
    return np.where(np.eye(n, dtype=bool), np.nan, matrices)


def colour_norm(matrices):
    """One colour scale for every panel, spanning the finite off-diagonal values."""
    finite = matrices[np.isfinite(matrices)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high - low < 1e-3:
        low, high = low - 0.05, high + 0.05
    return matplotlib.colors.Normalize(vmin=low, vmax=high)


def draw_matrix(ax, matrix, norm, labels, max_labels=12):
    """imshow of one coupling matrix (diagonal already NaN), integer ticks labelled with the scale's values,
    and the values written in the cells when the matrix is small."""
    n = matrix.shape[0]
    im = ax.imshow(matrix, norm=norm, cmap=CMAP, interpolation="nearest")
    ticks = range(0, n, max(1, int(np.ceil(n / max_labels))))
    ax.set_xticks(ticks, [str(labels[i]) for i in ticks], rotation=90 if n > max_labels / 2 else 0)
    ax.set_yticks(ticks, [str(labels[i]) for i in ticks])
    ax.tick_params(length=2)
    for spine in ax.spines.values():
        spine.set_visible(True)
    if n <= 6:
        middle = 0.5 * (norm.vmin + norm.vmax)
        for i, j in zip(*np.nonzero(np.isfinite(matrix))):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6.5,
                    color="white" if matrix[i, j] > middle else "black")
    return im


def panel_grid(count, per_row, size):
    """A figure of `count` square panels of `size` inches, `per_row` a row (spares hidden), room for a colorbar."""
    rows = int(np.ceil(count / per_row))
    cols = min(count, per_row)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 0.9, size * rows + 0.5), squeeze=False,
                             layout="constrained")
    for i in range(count, rows * cols):
        axes[i // cols][i % cols].axis("off")
    return fig, axes, cols


def plot_depth_heatmaps(d):
    """ujv / norm depth coupling, averaged over probes and tokens, at init / lowest m_K / final, every K."""
    depth = without_diagonal(d["depth_coupling"][:, :, :, UJV, NORM].mean(axis=(1, 2)))  # [S, nK, L, L]
    chosen, lowest = heatmap_steps(d)
    panels = [(s, r) for r in range(len(d["k"])) for s in chosen]  # a row per K, a column per step
    # one step (a single-model analysis): the K values side by side
    fig, axes, cols = panel_grid(len(panels), len(chosen) if len(chosen) > 1 else len(panels), 2.3)
    norm = colour_norm(depth[chosen])
    for i, (s, r) in enumerate(panels):
        ax = axes[i // cols][i % cols]
        im = draw_matrix(ax, depth[s, r], norm, d["layer"])
        mark = f" (lowest {MK})" if s == lowest else ""
        ax.set_title(f"step {d['step'][s]}{mark}, K={d['k'][r]}")
        if i + cols >= len(panels):
            ax.set_xlabel("basis block j")
        if i % cols == 0:
            ax.set_ylabel("block i")
    fig.colorbar(im, ax=axes, shrink=0.85, aspect=30, label=f"{MK} ({variant(d, UJV, NORM)}; lower = more coupled)")
    fig.suptitle(f"{d['title']}: depth coupling {MK}, mean over probes and tokens; grey: trivial diagonal")
    return fig


def plot_coupling_vs_step(d):
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.2), sharey=True, layout="constrained")
    for ax, (name, label) in zip(axes, (("depth_mean_offdiag_avg", "mean off-diagonal (all i != j)"),
                                        ("depth_mean_adjacent_avg", "depth-local (|i - j| = 1)"))):
        variant_lines(ax, d, name)
        ax.set_title(f"depth coupling, {label}")
    axes[1].set_ylabel("")
    variant_legend(axes[1], d, (NORM, TRACE))
    fig.suptitle(f"{d['title']}: depth coupling {MK}, mean over probes and tokens; bands: 95% interval over probes")
    return fig


def plot_lss(d):
    steps = d["step"]
    mean, low, high = intervals.probe_intervals(d["line_shape_score"].mean(axis=2))  # [step, probe, token]
    fig, ax = plt.subplots(figsize=(5.4, 3.0), layout="constrained")
    ax.fill_between(steps, low, high, alpha=0.2, color="C0", linewidth=0, label="95% interval over probes")
    ax.plot(steps, mean, marker="o", markersize=4, color="C0", label="mean over probes")
    layers = len(d["layer"])
    ax.axhline(np.sqrt(layers), color="0.5", linestyle=":", linewidth=1.0,
               label=f"random walk of {layers} steps (sqrt L)")
    step_axis(ax, steps)
    ax.set_ylabel("line-shape score (1 = straight)")
    ax.set_title(f"{d['title']}: trajectory linearity")
    legend_right(ax)
    return fig


def has_layer_linearity(d):
    return "layer_linearity" in d and np.isfinite(d["layer_linearity"]).any()


def plot_layer_linearity(d):
    steps = d["step"]
    fig, ax = plt.subplots(figsize=(5.4, 3.0), layout="constrained")
    for i, layer in enumerate(d["layer"]):
        ax.plot(steps, d["layer_linearity"][:, i], marker="o", markersize=3, color=f"C{i % 10}", label=f"block {layer}")
    step_axis(ax, steps)
    ax.set_ylabel("layer linearity (1 = affine)")
    tokens = d["attrs_measurement"].get("linearity_tokens") if "attrs_measurement" in d else None
    ax.set_title(f"{d['title']}: linearity of each block's map" + (f" over {tokens} tokens" if tokens else ""))
    legend_right(ax)
    return fig


def plot_norms(d):
    steps = d["step"]
    norms = d["residual_norms"].mean(axis=(1, 2))  # [S, L+1]
    states = d["state"].astype(float)
    fig, ax = plt.subplots(figsize=(5.4, 3.2), layout="constrained")
    handles = []
    for i, s in enumerate(pick_steps(steps, 4)):
        line, = ax.plot(states, norms[s], marker="o", markersize=4, color=f"C{i}")
        finite = np.isfinite(norms[s]) & (norms[s] > 0)
        label = f"step {steps[s]}"
        if finite.sum() >= 2:
            b, a = np.polyfit(states[finite], np.log(norms[s][finite]), 1)
            ax.plot(states, np.exp(a + b * states), linestyle=":", color=line.get_color())
            label += f": x{np.exp(b):.2f} per block"
        handles.append(Line2D([], [], color=line.get_color(), marker="o", markersize=4, label=label))
    handles.append(Line2D([], [], color="0.3", linestyle=":", label="log-linear fit"))
    log_y(ax, norms[pick_steps(steps, 4)])
    integer_axis(ax.xaxis)
    ax.set_xlabel("residual state l (0 = embedding)")
    ax.set_ylabel(r"$\Vert x^l \Vert$ (mean over probes and tokens)")
    ax.set_title(f"{d['title']}: norm growth with depth")
    legend_right(ax, handles)
    return fig


def plot_sigma(d):
    steps = d["step"]
    sigma = d["singular_values"][..., 0].mean(axis=(1, 2))  # [S, L]
    fig, ax = plt.subplots(figsize=(5.4, 3.2), layout="constrained")
    for i, s in enumerate(pick_steps(steps, 4)):
        ax.plot(d["layer"], sigma[s], marker="o", markersize=4, color=f"C{i}", label=f"step {steps[s]}")
    integer_axis(ax.xaxis)
    ax.set_xlabel("block l")
    ax.set_ylabel(r"$s_1(J^l)$ (mean over probes and tokens)")
    ax.set_title(f"{d['title']}: top singular value by depth")
    legend_right(ax)
    return fig


def has_losses(d):
    return len(d["train"].get("step", ())) > 0 or len(d["eval"].get("step", ())) > 0


def running_mean(values, window):
    """Centred mean over +-10% of each index (even on a log step axis), at most `window` values wide."""
    index = np.arange(len(values))
    half = np.minimum(index // 10, window // 2)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    low, high = index - half, np.minimum(len(values), index + half + 1)
    return (sums[high] - sums[low]) / (high - low)


def plot_loss(d):
    fig, ax = plt.subplots(figsize=(5.4, 3.2), layout="constrained")
    train, held_out = d["train"], d["eval"]
    if len(train["step"]):
        x, loss = train["step"] + 1, train["loss"]  # update s completes s + 1 updates
        window = len(loss) // 40  # running mean over up to 1/40 of the run, where that is 2 batches or more
        ax.plot(x, loss, color="C0", alpha=0.3 if window >= 2 else 1.0, linewidth=0.8, label="training batch")
        if window >= 2:
            ax.plot(x, running_mean(loss, window), color="C0", linewidth=1.4, label="training, running mean")
    if len(held_out["step"]):
        ax.plot(held_out["step"], held_out["val_loss"], color="C1", marker="o", markersize=4, label="held-out")
    baseline = (d.get("summary") or {}).get("bigram_val_loss")
    if baseline is not None:
        ax.axhline(baseline, color="0.4", linestyle="--", linewidth=1, label="byte-bigram baseline")
    step_axis(ax, np.concatenate([train["step"] + 1, held_out["step"]]))
    ax.set_ylabel(f"loss ({loss_unit(d['attrs'].get('model'))})")
    ax.set_title(f"{d['title']}: loss")
    legend_right(ax)
    return fig


def cumulative_overhead(d):
    """Measurement time / training time, both summed from the start up to each measurement (NaN before
    the first update: the seconds before step 0 are setup, not training)."""
    training = np.cumsum(d["train_seconds"])
    return np.divide(np.cumsum(d["measure_seconds"]), training, out=np.full(len(training), np.nan),
                     where=(training > 0) & (d["step"] > 0))


def plot_overhead(d):
    steps = d["step"]
    trained = np.nansum(d["train_seconds"]) > 0  # coupling-analyze logs measure checkpoints, no training
    fig, axes = plt.subplots(1, 2 if trained else 1, figsize=(8.6 if trained else 5.0, 3.0), squeeze=False,
                             layout="constrained")
    axes = axes[0]
    if trained:
        ax = axes[0]
        ratio = cumulative_overhead(d)
        ax.plot(steps, ratio, marker="o", markersize=4, color="C2", label="overhead so far (from the log)")
        overall = (d.get("summary") or {}).get("overhead_fraction")
        if overall:
            ax.axhline(overall, color="0.4", linestyle="--", linewidth=1,
                       label="overhead of the whole run\n(summary.json)")
        log_y(ax, np.append(ratio, overall or np.nan))
        step_axis(ax, steps)
        ax.set_ylabel("measurement time / training time")
        ax.set_title("overhead so far (cumulative seconds)")
    ax = axes[-1]
    ax.plot(steps, d["measure_seconds"], marker="o", markersize=4, color="C0",
            label="seconds of the measurement")
    if trained:
        shown = np.where(d["train_seconds"] > 0, d["train_seconds"], np.nan)
        ax.plot(steps, shown, marker="s", markersize=3.5, color="C1",
                label="seconds of training since\nthe previous measurement")
    log_y(ax, np.concatenate([d["measure_seconds"], d["train_seconds"] if trained else []]))
    step_axis(ax, steps)
    ax.set_ylabel("wall time (s)")
    ax.set_title("seconds at each measurement")
    legend_right(ax, [h for a in axes for h in a.get_legend_handles_labels()[0]])
    note = "; schema-1 log: training seconds include the previous measurement" \
        if d["attrs"].get("schema_version") == 1 and trained else ""
    fig.suptitle(f"{d['title']}: measurement overhead{note}")
    return fig


def has_token_heatmaps(d):
    return "token_coupling_final" in d  # schema 2 with at least two measured tokens


def plot_token_heatmaps(d):
    """ujv / norm / smallest K token-coupling matrix per block, final step, mean over probes."""
    tc = without_diagonal(d["token_coupling_final"].mean(axis=0))  # [L, n, n]
    L, n = tc.shape[0], tc.shape[1]
    per_row = int(max(4, np.ceil(np.sqrt(L))))
    per_row = int(np.ceil(L / np.ceil(L / per_row)))  # balanced rows
    fig, axes, cols = panel_grid(L, per_row, min(3.2, max(2.0, 0.22 * n)))
    norm = colour_norm(tc)
    for l in range(L):
        ax = axes[l // cols][l % cols]
        im = draw_matrix(ax, tc[l], norm, d["token"], max_labels=16)
        ax.set_title(f"block {d['layer'][l]}")
        if l + cols >= L:
            ax.set_xlabel("basis token position")
        if l % cols == 0:
            ax.set_ylabel("token position")
    fig.colorbar(im, ax=axes, shrink=0.85, aspect=30, label=f"{MK} ({variant(d, UJV, NORM)}; lower = more coupled)")
    fig.suptitle(f"{d['title']}: token coupling {MK} (K={d['k'][0]}) at step {d['token_coupling_step']}, "
                 "mean over probes; grey: trivial diagonal")
    return fig


TOKEN_PANELS = (("token_mean_offdiag_avg", "token coupling: same block, tokens i != j"),
                ("block_token_mean_offdiag_avg", "block-by-token coupling: all (block, token) pairs"),
                ("context_same_input_avg", "context coupling: same input t1"),
                ("context_same_output_avg", "context coupling: same output t2"))


def has_token_summaries(d):
    return any(name in d for name, _ in TOKEN_PANELS)


def plot_token_vs_step(d):
    """The token / block-token / context summaries against step."""
    panels = [(name, label) for name, label in TOKEN_PANELS if name in d]
    cols = min(2, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols + 1.2, 3.0 * rows), squeeze=False,
                             layout="constrained")
    for i, (name, label) in enumerate(panels):
        ax = axes[i // cols][i % cols]
        variant_lines(ax, d, name)
        ax.set_title(f"{label}, mean off-diagonal" if "offdiag" in name else label)
    for i in range(len(panels), rows * cols):
        axes[i // cols][i % cols].axis("off")
    variant_legend(axes[0][cols - 1], d, (NORM, TRACE))
    fig.suptitle(f"{d['title']}: token and context coupling {MK}, mean over probes")
    return fig


def always(d):
    return True


# every figure: file name (without extension), function making it, whether the log has what it needs
FIGURES = (("depth_heatmaps", plot_depth_heatmaps, always),
           ("coupling_vs_step", plot_coupling_vs_step, always),
           ("lss_vs_step", plot_lss, always),
           ("layer_linearity_vs_step", plot_layer_linearity, has_layer_linearity),
           ("norms_vs_depth", plot_norms, always),
           ("sigma_vs_depth", plot_sigma, always),
           ("loss_vs_step", plot_loss, has_losses),
           ("overhead", plot_overhead, always),
           ("token_heatmaps", plot_token_heatmaps, has_token_heatmaps),
           ("token_coupling_vs_step", plot_token_vs_step, has_token_summaries))


def plot_all(d, out, fmt, dpi):
    """Writes the figures the log supports; returns their file names."""
    os.makedirs(out, exist_ok=True)
    written = []
    for name, make, applies in FIGURES:
        if applies(d):
            with plt.rc_context(STYLE):
                save(make(d), os.path.join(out, f"{name}.{fmt}"), dpi)
            written.append(f"{name}.{fmt}")
    return written


def readme_figure(d, path, dpi):
    """Mean off-diagonal m_K (ujv, norm) against step, every K, beside the final depth heatmap (smallest K)."""
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(7.6, 2.9), layout="constrained",
                                          gridspec_kw={"width_ratios": [1.45, 1]})
        variant_lines(left, d, "depth_mean_offdiag_avg", normalisations=(NORM,))
        left.set_title(f"(a) mean off-diagonal depth coupling {MK}" +
                       ("; dotted: uncoupled null" if "depth_mean_offdiag_null_avg" in d else ""))
        left.legend([Line2D([], [], color=k_colour(r), marker="o", markersize=4) for r in range(len(d["k"]))],
                    [f"K={k}" for k in d["k"]], loc="lower left", bbox_to_anchor=(0.0, 1.09), ncol=len(d["k"]),
                    borderaxespad=0.0, handlelength=1.5, columnspacing=1.0)
        # the colour scale spans every step, so the final matrix reads on the same scale as panel (a)
        depth = without_diagonal(d["depth_coupling"][:, :, :, UJV, NORM, 0].mean(axis=(1, 2)))  # [S, L, L]
        im = draw_matrix(right, depth[-1], colour_norm(depth), d["layer"])
        right.set_title(f"(b) {MK} at step {d['step'][-1]}, K={d['k'][0]}")
        right.set_xlabel("basis block j")
        right.set_ylabel("block i")
        fig.colorbar(im, ax=right, shrink=0.9, label=f"{MK}, scale of all steps\n(grey: trivial i = j)")
        fig.suptitle(f"{d['attrs'].get('model', 'model')}: depth coupling {MK} ({variant(d, UJV, NORM)}, "
                     "mean over probes and tokens; lower = more coupled)")
        save(fig, path, dpi)


def table(d, summary):
    steps, ks = d["step"], d["k"]
    ujv_norm = variant(d, UJV, NORM)
    rows = []
    for r, k in enumerate(ks):
        for name, label in (("depth_mean_offdiag_avg", "mean off-diag"), ("depth_mean_adjacent_avg", "|i-j|=1")):
            rows.append((f"depth m_K {ujv_norm} {label}, K={k}", d[name][:, UJV, NORM, r]))
            null = null_band(d, name, r)
            if null is not None:
                rows.append(("  uncoupled null (sd)", null))
    if "token_mean_offdiag_avg" in d:
        for r, k in enumerate(ks):
            rows.append((f"token m_K {ujv_norm} mean off-diag, K={k}", d["token_mean_offdiag_avg"][:, UJV, NORM, r]))
    rows.append(("line-shape score (1 = straight)", d["line_shape_score"].reshape(len(steps), -1).mean(1)))
    rows.append(("  random walk, sqrt(L)", np.full(len(steps), np.sqrt(len(d["layer"])))))
    if has_layer_linearity(d):
        rows.append(("layer linearity, mean over blocks", d["layer_linearity"].mean(1)))
    rows.append(("norm growth rate b (log||x^l|| per block)", d["norm_growth_rate"].reshape(len(steps), -1).mean(1)))
    rows.append(("norm growth fit R^2", d["norm_growth_r2"].reshape(len(steps), -1).mean(1)))
    columns = [0, len(steps) - 1] if len(steps) > 1 else [0]  # step 0 (or the first) and the final step
    print(f"{'metric':46s}" + "".join(f" {'step ' + str(steps[c]):>12s}" for c in columns))
    for label, values in rows:
        if isinstance(values, tuple):  # a null: "mean (sd)"
            cells = "".join(f" {f'{values[0][c]:.4f} ({values[1][c]:.4f})':>12s}" for c in columns)
        else:
            cells = "".join(f" {values[c]:12.4f}" for c in columns)
        print(f"{label:46s}" + cells)
    span = f"steps {steps[0]} to {steps[-1]}" if len(steps) > 1 else f"step {steps[0]}"
    print(f"\nmeasurements: {len(steps)} ({span}), "
          f"{plain_number(np.nansum(d['measure_seconds']))} s in total")
    overhead = cumulative_overhead(d)[-1] if len(steps) else np.nan
    if summary and "overhead_fraction" in summary:
        overhead, source = summary["overhead_fraction"], "whole run, summary.json"
    else:
        source = "from the log"
    if np.isfinite(overhead):
        print(f"measurement overhead (measurement time / training time): {overhead:.3g} = {100 * overhead:.2g}% "
              f"({source})")
    shown = [(label, summary[key], is_loss) for key, label, is_loss in SUMMARY_ROWS if summary and key in summary]
    if shown:
        unit = loss_unit(summary.get("model", d["attrs"].get("model")))
        at = f"step {summary['final_step']}" if "final_step" in summary else "final"
        heading = f"final losses ({unit})" if all(is_loss for *_, is_loss in shown) \
            else f"final metrics (losses in {unit})"
        print(f"\n{heading:46s} {at:>12s}")
        for label, value, _ in shown:
            print(f"{label:46s} {value:12.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log")
    parser.add_argument("--out", help="directory of the figures (default: the log's directory)")
    parser.add_argument("--format", choices=("png", "pdf", "svg"), default="png", help="figure format (default png)")
    parser.add_argument("--dpi", type=float, default=150, help="resolution of raster output (default 150)")
    parser.add_argument("--summary", help="summary.json of the run (adds final losses and the run's overhead)")
    parser.add_argument("--live", nargs="?", const=30.0, type=float, metavar="SECONDS")
    parser.add_argument("--readme-figure", metavar="PATH", help="write only the README figure to PATH")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.log):
        sys.exit(f"plot_coupling: no such log: {args.log}")
    out = args.out or os.path.dirname(os.path.abspath(args.log))
    try:
        for group, rows in log.check(args.log).items():
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
        elif args.readme_figure:
            readme_figure(d, args.readme_figure, args.dpi)
            print(f"plot_coupling: wrote {args.readme_figure}")
        else:
            d["summary"] = None
            if args.summary and os.path.isfile(args.summary):
                with open(args.summary) as f:
                    d["summary"] = json.load(f)
            count = len(d["step"])
            d["title"] = f"{d['attrs'].get('model', 'model')} ({count} measurement{'s' if count > 1 else ''})"
            written = plot_all(d, out, args.format, args.dpi)
            table(d, d["summary"])
            print(f"plot_coupling: wrote {len(written)} {args.format.upper()}s to {out}: {', '.join(written)}")
        if args.live is None:
            break
        time.sleep(args.live)


if __name__ == "__main__":
    main()
