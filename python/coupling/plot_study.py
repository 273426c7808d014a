"""Figures of a coupling study (scripts/study.sh): coupling curves of the family and scatter plots.

Usage: plot_study.py STUDY_DIR [--dpi DPI]
Reads STUDY_DIR/study.h5 (scripts/study.py, or study.py --from-summaries; through coupling.study.read_study)
and writes
  study_curves.png        the depth coupling m_K at the smallest K (mean off-diagonal, ujv, norm)
                          against step (symmetric-log axis) for every member, coloured by depth (line
                          style: seed), each member's final held-out metric in the legend
  study_<predictor>.png   per predictor tested, the held-out metric against it (points coloured by
                          depth), titled with Pearson r, Spearman rho, the partial r controlling for
                          log(params) and Holm's corrected p of r
"""
import argparse
import math
import os
import sys

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from coupling import plot as plot_coupling  # noqa: E402
from coupling.study import read_study  # noqa: E402

MODEL_LABEL = {"gpt": "GPT", "vit": "ViT"}
METRIC_LABEL = {"val_loss": "held-out loss (nats/byte)", "test_accuracy": "test accuracy"}


def strings(dataset):
    return [n.decode() if isinstance(n, bytes) else n for n in dataset[:]]


def depth_colours(depths):
    """{depth: colour}: a sequential map over the distinct depths (NaN depth: grey)."""
    unique = sorted({d for d in depths if math.isfinite(d)})
    cmap = matplotlib.colormaps["viridis"]
    colours = {d: cmap(0.85 * i / max(len(unique) - 1, 1)) for i, d in enumerate(unique)}
    return lambda d: colours.get(d, "0.5")


def value_text(metric, value):
    return f"{value:.3f}" if metric == "test_accuracy" else f"{value:.4f}"


def plot_curves(f, root, dpi):
    members = f["members"]
    metric = f["attrs"]["heldout_metric"]
    names, depths, heldout = strings(members["member"]), members["depth"][:], members[metric][:]
    columns = strings(members["curve_column"])
    curves = f["curves"]
    index, steps, values = curves["member"][:], curves["step"][:], curves["value"][:]
    if not len(index):
        return False
    colour = depth_colours(depths)
    seeds = members["seed"][:]
    seed_rank = {v: i for i, v in enumerate(sorted({v for v in seeds if math.isfinite(v)}))}
    styles = ("-", "--", ":", "-.")
    used = sorted({c for c in columns if c})
    label_k = ", ".join(sorted({c.split("_")[2][1:] for c in used}, key=int))
    with plt.rc_context(plot_coupling.STYLE):
        fig, ax = plt.subplots(figsize=(7.2, 3.8))
        order = sorted(range(len(names)), key=lambda i: (depths[i], names[i]))
        handles = []
        for i in order:
            mask = index == i
            if not mask.any() or not np.isfinite(values[mask]).any():
                continue
            style = styles[seed_rank.get(seeds[i], 0) % len(styles)]
            line, = ax.plot(steps[mask], values[mask], color=colour(depths[i]), ls=style, lw=1.1, alpha=0.9,
                            marker="o", ms=2,
                            label=f"{names[i]}  {metric} {value_text(metric, heldout[i])}")
            handles.append(line)
        plot_coupling.step_axis(ax, steps)
        ax.set_ylabel(f"$m_K$, K = {label_k} (lower = more coupled)")
        direction = "higher" if f["attrs"]["higher_is_better"] else "lower"
        missing = len(names) - len(handles)
        ax.set_title(f"{MODEL_LABEL.get(f['attrs']['model'], f['attrs']['model'])} family, {len(handles)} members"
                     + (f" ({missing} without block pairs: no coupling)" if missing else "")
                     + f": mean off-diagonal depth coupling (ujv, norm)\n"
                     f"colour = depth, line style = seed, dots = measured steps; legend: final {metric} ({direction} is better)")
        if handles:
            plot_coupling.legend_right(ax, handles=handles)
        plot_coupling.save(fig, os.path.join(root, "study_curves.png"), dpi)
    return True


def plot_scatter(f, root, dpi):
    members, c = f["members"], f["correlations"]
    metric = f["attrs"]["heldout_metric"]
    y, depths = members[metric][:], members["depth"][:]
    colour = depth_colours(depths)
    point_colours = [colour(d) for d in depths]
    names = strings(c["predictor"])
    legend = [Line2D([], [], ls="", marker="o", color=colour(d), label=f"depth {d:g}")
              for d in sorted({d for d in depths if math.isfinite(d)})]
    with plt.rc_context(plot_coupling.STYLE):
        fig, ax = plt.subplots(figsize=(4.8, 3.5))
        for i, name in enumerate(names):
            ax.clear()
            ax.scatter(members[name][:], y, c=point_colours, s=22)
            ax.set_xlabel(name)
            ax.set_ylabel(METRIC_LABEL.get(metric, metric))
            partial = c["partial_r"][i]
            partial_text = f", partial {partial:.2f}" if math.isfinite(partial) else ""
            ax.set_title(f"r = {c['pearson_r'][i]:.2f} (Holm p {c['pearson_p_holm'][i]:.2g}), "
                         f"rho = {c['spearman_rho'][i]:.2f}{partial_text}")
            if legend:
                ax.legend(handles=legend, fontsize=7)
            fig.savefig(os.path.join(root, f"study_{name}.png"), dpi=dpi, bbox_inches="tight")
        plt.close(fig)
    return len(names)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="plot_study.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study")
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args(argv)
    path = os.path.join(args.study, "study.h5")
    try:
        f = read_study(path)
    except (OSError, KeyError) as e:
        print(f"plot_study.py: cannot open {path} ({e}); run scripts/study.py first", file=sys.stderr)
        return 2
    curves = plot_curves(f, args.study, args.dpi)
    count = plot_scatter(f, args.study, args.dpi)
    print(f"plot_study: wrote {'study_curves.png and ' if curves else ''}{count} scatter plots to {args.study}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
