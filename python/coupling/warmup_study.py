"""The warm-up experiment (studies/warmup.toml, docs/study.md): is the early dip of coupling a learning phase or
an artifact of the learning-rate schedule?

Usage: warmup_study.py SUMMARIES_DIR [--figure PATH]       (coupling-warmup-study, or scripts/warmup_study.py)
Reads the member summaries (version 2: coupling.study writes them, studies/results/warmup holds the committed
ones) and prints, in markdown:

1. The dip of each member: the step where m_10 - null_10 (mean off-diagonal depth coupling, ujv, norm,
   minus its uncoupled null) is lowest, and where that step lies on three axes: the step, the summed learning
   rate up to it (lr_sum) and the smoothed training loss (train_loss_smooth). A dip whose m_10 stays inside the
   null's band (not below null - 2 sd) is reported as none.
2. The collapse of each axis. Per configuration (seeds averaged), the dip's position on each axis; its spread
   across configurations, relative = (max - min) / mean of the configuration means, beside the seed-level
   spread (the mean over configurations of |seed 1 - seed 2| / mean). If the dip is an artifact of the
   schedule it moves with warm-up in steps but sits at one lr_sum; if it is a learning phase it sits at one
   training loss whatever the schedule. The axis whose relative spread is smallest, and comparable to the
   seed-level spread, is where the curves collapse. Also per axis: the curve collapse score, the sd across
   configurations of m_10 - null on a common grid of that axis, averaged over the grid (window: the range every
   configuration covers up to its dip's twice-position, so that the comparison is about the dip), against the
   same sd across seeds within configurations.
3. The onset and the exit of the dip: where m_10 - null first falls below -0.15 (about half the dip's depth)
   and where, after its lowest point, it first rises back above it, on each axis, with the same spreads. A
   curve's minimum is flat-bottomed and its position noisy; its flanks are sharp.
4. The within-architecture check, fixed in advance: the final m_10 - null_10 and its area under the curve
   (against the fraction of training) against val_loss, over the configuration means (Pearson r, p with n - 2
   df), with each configuration's seed-level half-range. With 6 configurations only |r| >= 0.81 reaches p <
   0.05, and learning rate and warm-up move val_loss directly: this is no test of the paper's claim.

--figure PATH draws m_10 - null, adjacent m_2 - null and layer linearity (rows) against step, lr_sum and the
smoothed training loss (columns), one colour per configuration (seeds averaged where they share the axis).
Needs numpy and scipy (and matplotlib for --figure); reads JSON only.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
from scipy import stats

M10, M10_NULL, M10_SD = "m_offdiag_k10_ujv_norm", "m_offdiag_k10_ujv_norm_null", "m_offdiag_k10_ujv_norm_null_sd"
ADJ2, ADJ2_NULL = "m_adjacent_k2_ujv_norm", "m_adjacent_k2_ujv_norm_null"
AXES = (("step", "step"), ("lr_sum", "summed learning rate"), ("train_loss_smooth", "training loss (nats/byte)"))
CONFIG_KEYS = ("warmup", "lr")
CROSSING = -0.15  # about half the dip's depth in m_10 - null for these models


class WarmupError(Exception):
    pass


def values(trajectory, key):
    return np.array([np.nan if v is None else v for v in trajectory[key]], dtype=float)


def load(directory):
    """The version-2 summaries of the directory, each with its trajectory as numpy arrays."""
    members = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        s = json.load(open(os.path.join(directory, name)))
        if s.get("kind") != "libcoupling-study-member":
            continue
        trajectory = s.get("trajectory") or {}
        needed = {"step", "lr_sum", "train_loss_smooth", M10, M10_NULL, M10_SD}
        if not needed <= set(trajectory):
            raise WarmupError(f"{name} lacks {', '.join(sorted(needed - set(trajectory)))}: a version-2 summary of "
                              "a schema-4 log with K = 10 is needed (coupling.study on studies/warmup.toml's runs)")
        s["t"] = {key: values(trajectory, key) for key in trajectory}
        s["configuration"] = tuple((key, s["config"].get(key)) for key in CONFIG_KEYS)
        members.append(s)
    if not members:
        raise WarmupError(f"{directory} holds no member summaries")
    return members


def dip(member):
    """(index of the measured step where m_10 - null is lowest, whether m_10 there is below null - 2 sd)."""
    t = member["t"]
    excess = t[M10] - t[M10_NULL]
    i = int(np.nanargmin(excess))
    return i, bool(t[M10][i] < t[M10_NULL][i] - 2 * t[M10_SD][i])


def crossing(member, axis, which):
    """Where on `axis` m_10 - null first falls below CROSSING ("onset") or, after its lowest point, first
    rises back above it ("exit"), linear between the measured steps; NaN when it does not."""
    t = member["t"]
    y, x = t[M10] - t[M10_NULL], t[axis]
    low = int(np.nanargmin(y))
    indices = range(1, low + 1) if which == "onset" else range(low + 1, len(y))
    for i in indices:
        before, after = y[i - 1], y[i]
        if (which == "onset" and before >= CROSSING > after) or (which == "exit" and before <= CROSSING < after):
            if not (np.isfinite(x[i - 1]) and np.isfinite(x[i])):
                return math.nan
            return float(x[i - 1] + (CROSSING - before) / (after - before) * (x[i] - x[i - 1]))
    return math.nan


def label(configuration):
    return ", ".join(f"{key} {value}" for key, value in configuration)


def configurations(members):
    groups = {}
    for m in members:
        groups.setdefault(m["configuration"], []).append(m)
    def order(item):  # numerically, by the configuration keys in CONFIG_KEYS order
        return tuple(v if isinstance(v, (int, float)) else math.inf for _, v in item[0])
    return dict(sorted(groups.items(), key=order))


def relative_spread(x):
    x = np.asarray(x, dtype=float)
    return float((x.max() - x.min()) / x.mean()) if len(x) >= 2 and x.mean() != 0 else math.nan


def collapse_score(groups, axis, window):
    """(between, within): the sd of m_10 - null across configuration means and across seeds within a
    configuration, on 60 points spanning `window` of the axis, averaged over the points."""
    grid = np.linspace(window[0], window[1], 60)
    by_config, within = [], []
    for members in groups.values():
        curves = []
        for m in members:
            x, y = m["t"][axis], m["t"][M10] - m["t"][M10_NULL]
            ok = np.isfinite(x) & np.isfinite(y)
            order = np.argsort(x[ok])
            curves.append(np.interp(grid, x[ok][order], y[ok][order]))
        curves = np.array(curves)
        by_config.append(curves.mean(axis=0))
        if len(curves) >= 2:
            within.append(curves.std(axis=0, ddof=1))
    between = np.array(by_config).std(axis=0, ddof=1).mean() if len(by_config) >= 2 else math.nan
    return float(between), float(np.mean(within)) if within else math.nan


def report(members):
    groups = configurations(members)
    print("## Dips (m_10 - null_10 lowest; mean off-diagonal, ujv, norm)\n")
    print("| member | configuration | dip step | lr_sum | training loss | m_10 | null_10 (sd) | below the band |")
    print("|---|---|---|---|---|---|---|---|")
    for m in members:
        i, below = dip(m)
        t = m["t"]
        print(f"| {m['member']} | {label(m['configuration'])} | {int(t['step'][i])} | {t['lr_sum'][i]:.4f} | "
              f"{t['train_loss_smooth'][i]:.3f} | {t[M10][i]:.4f} | {t[M10_NULL][i]:.4f} ({t[M10_SD][i]:.4f}) | "
              f"{'yes' if below else 'no: no dip'} |")
    print("\n## Collapse: where the dip sits on each axis\n")
    print("| axis | " + " | ".join(label(c) for c in groups) + " | relative spread across configurations | "
          "seed-level spread | curve sd across configurations | across seeds |")
    print("|---|" + "---|" * (len(groups) + 4))
    dips = {c: [dip(m) for m in ms] for c, ms in groups.items()}
    for axis, name in AXES:
        positions = {c: [m["t"][axis][i] for m, (i, _) in zip(ms, dips[c])] for c, ms in groups.items()}
        means = [float(np.mean(p)) for p in positions.values()]
        seed_level = [abs(p[0] - p[1]) / np.mean(p) for p in positions.values() if len(p) >= 2]
        # the window about the dips: on the loss axis (which falls) from the lowest dip's loss up to the highest
        # loss every member has shown; else from where every member starts to twice the earliest late dip
        if axis == "train_loss_smooth":
            window = (min(p for ps in positions.values() for p in ps), min(np.nanmax(m["t"][axis]) for m in members))
        else:
            window = (max(np.nanmin(m["t"][axis]) for m in members), min(2 * max(p) for p in positions.values()))
        between, within = collapse_score(groups, axis, window) if window[1] > window[0] else (math.nan, math.nan)
        print(f"| {name} | " + " | ".join(f"{v:.4g}" for v in means) +
              f" | {relative_spread(means):.3f} | {np.mean(seed_level):.3f} | {between:.4f} | {within:.4f} |")
    print(f"\n## Onset and exit: where m_10 - null crosses {CROSSING} on the way down and back up\n")
    print("| axis | crossing | " + " | ".join(label(c) for c in groups) + " | relative spread across "
          "configurations | seed-level spread |")
    print("|---|---|" + "---|" * (len(groups) + 2))
    for axis, name in AXES:
        for which in ("onset", "exit"):
            positions = {c: [crossing(m, axis, which) for m in ms] for c, ms in groups.items()}
            means = [float(np.mean(p)) for p in positions.values()]
            seed_level = [abs(p[0] - p[1]) / np.mean(p) for p in positions.values() if len(p) >= 2]
            print(f"| {name} | {which} | " + " | ".join(f"{v:.4g}" for v in means) +
                  f" | {relative_spread(means):.3f} | {np.mean(seed_level):.3f} |")
    print("\n## Within the architecture: fixed predictors against val_loss, configuration means\n")
    print("| predictor | " + " | ".join(label(c) for c in groups) + " | Pearson r | p (n - 2 df) |")
    print("|---|" + "---|" * (len(groups) + 2))
    y = [float(np.mean([m["heldout"] for m in ms])) for ms in groups.values()]
    y_err = [float(np.ptp([m["heldout"] for m in ms]) / 2) for ms in groups.values()]
    print("| val_loss | " + " | ".join(f"{v:.4f} ± {e:.4f}" for v, e in zip(y, y_err)) + " | | |")
    for predictor in ("m_offdiag_k10_ujv_norm_excess_final", "m_offdiag_k10_ujv_norm_excess_auc"):
        per = [[m["predictors"].get(predictor) for m in ms] for ms in groups.values()]
        if any(v is None for p in per for v in p):
            print(f"| {predictor} | (not defined for every member) | | |")
            continue
        x = [float(np.mean(p)) for p in per]
        x_err = [float(np.ptp(p) / 2) for p in per]
        r, p = stats.pearsonr(x, y) if len(x) >= 3 else (math.nan, math.nan)
        print(f"| {predictor} | " + " | ".join(f"{v:.4f} ± {e:.4f}" for v, e in zip(x, x_err)) +
              f" | {r:.3f} | {p:.3f} |")
    print("\n± is half the range over the seeds of a configuration.")


def figure(members, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = configurations(members)
    rows = ((M10, M10_NULL, "$m_{10}$ - null (off-diag.)"), (ADJ2, ADJ2_NULL, "$m_2$ - null (adjacent)"),
            ("linearity", None, "layer linearity"))
    fig, axes = plt.subplots(3, 3, figsize=(11, 8), layout="constrained", sharey="row")
    for c, (configuration, ms) in enumerate(groups.items()):
        for m in ms:
            t = m["t"]
            for r, (key, null, ylabel) in enumerate(rows):
                if key not in t:
                    continue
                y = t[key] - t[null] if null else t[key]
                for a, (axis, xlabel) in enumerate(AXES):
                    ax = axes[r][a]
                    ax.plot(t[axis], y, color=f"C{c}", linewidth=1.0, alpha=0.8,
                            label=label(configuration) if (r, a) == (0, 0) and m is ms[0] else None)
                    if r == 0:
                        i, below = dip(m)
                        ax.plot(t[axis][i], y[i], "o" if below else "x", color=f"C{c}", markersize=4)
                    ax.set_xlabel(xlabel)
                    if a == 0:
                        ax.set_ylabel(ylabel)
    for r in range(3):
        axes[r][0].set_xscale("symlog", linthresh=10)
        axes[r][1].set_xscale("symlog", linthresh=0.01)
        axes[r][2].invert_xaxis()
        if r < 2:
            for ax in axes[r]:
                ax.axhline(0, color="0.5", linestyle=":", linewidth=0.8)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Warm-up experiment: GPT 4 x 128, 2 seeds per configuration (markers: each member's dip; x: "
                 "inside the null band)")
    fig.savefig(path, dpi=130)
    print(f"\nwarmup_study: wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="warmup_study.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summaries", help="a directory of study member summaries (version 2)")
    parser.add_argument("--figure", help="where to draw the curves (png, pdf or svg)")
    args = parser.parse_args(argv)
    try:
        if not os.path.isdir(args.summaries):
            raise WarmupError(f"{args.summaries} is not a directory")
        members = load(args.summaries)
        report(members)
        if args.figure:
            figure(members, args.figure)
    except (WarmupError, OSError, ValueError) as e:
        print(f"warmup_study: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
