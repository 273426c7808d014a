"""Collects a coupling study (scripts/study.sh) and correlates the held-out metric with each predictor.

Usage: study.py STUDY_DIR                     (coupling-study, or scripts/study.py)
       study.py --from-summaries DIR [--out OUT]
The first form reads every finished member (STUDY_DIR/MEMBER/summary.json, config.toml, coupling.h5:
the log through coupling.log.tidy, which needs pandas and xarray) and writes a small summary per member,
STUDY_DIR/summaries/MEMBER.json: the run's config, final metrics, every predictor and the plotted
coupling curve, no log (a few kB: commit them). The second form re-derives every table from such
summaries alone (DIR/*.json) and writes them to OUT (default DIR). Both then write
  study.csv               one row per member: member, config (index of its configuration: the members
                          that differ only in seed share one), seed, the held-out metric, params,
                          log_params, depth, width, lr, steps, ..., and every predictor
  study_correlations.csv  one row per predictor tested (defined for >= 3 members and not constant)
  study.h5                /members (one dataset per study.csv column, plus curve_column), /correlations
                          (one dataset per study_correlations.csv column), /curves (member, step, value:
                          the coupling curve of each member) and the root attributes model, heldout_metric,
                          higher_is_better, members, configs, tested, heldout_icc, heldout_anova_f, heldout_anova_p
and print the correlation table, sorted by |partial r| (then R^2).

Held-out metric: val_loss (nats/byte, lower is better) for a GPT family; test_accuracy (fraction of
the test images, higher is better) for a ViT family. Correlations are with the metric as it is, so a
predictor that goes with better generalisation has r < 0 for a GPT family and r > 0 for a ViT family.

Predictors. Time series, one value per measured step (coupling.log.tidy): the depth coupling m_K
averaged over the block pairs (m_offdiag) and over adjacent blocks (m_adjacent), for each K and both
orientations (ujv, vju), normalisation "norm" (lower = more coupled); the line-shape score lss (1 =
straight) and the norm growth rate (nats/block). For each series SERIES:
  SERIES_final      the value at the final step (= at 100% of training)
  SERIES_peak       the extreme over the measured steps: the minimum for m and lss, the maximum for
                    the norm growth rate
  SERIES_peak_step  the step of that extreme
  SERIES_at10, SERIES_at50  the value at 10% and 50% of training (linear between measured steps)
  SERIES_auc        the area under the curve against the fraction of training step/steps, trapezoid
                    over the measured steps from step 0 to the end: the time-average of the value, so
                    it compares across members of different lengths
Non-finite values are skipped (at10/at50/peak use the finite ones; auc needs step 0 and the final
step finite). A 1-block model has no block pairs, so its coupling predictors are NaN. Structural
predictors: log_params, depth, width, lr and any of steps, weight_decay, warmup, batch, heads,
dropout, context, patch that vary.
Schema-4 logs add, for each m_K series, SERIES_excess_* (m minus its uncoupled null: < 0 = coupled) and the
series lss_per_random_walk (LSS / sqrt(L), comparable across depths) and linearity (layer linearity, mean
over blocks). The peak and peak_step of an m_K series (and of its excess) are NaN when the lowest value stays
inside the null's band (not below null - 2 sd): a curve that never leaves the null has no dip step.
Summaries (version 2) also keep a "trajectory" per measured step: the m_10 and m_2 curves (offdiag and
adjacent, ujv, norm) with their nulls and null sds, lss, lss_per_random_walk, linearity, norm_growth_rate,
train_loss_smooth (mean batch loss of the 20 updates before the step) and lr_sum (the summed learning rate
of the updates done): what coupling.warmup_study reads.

Per predictor (the members where it is defined: n):
  pearson_r, pearson_p, spearman_rho, spearman_p, r2 (= pearson_r^2, of the linear fit)
  *_p_holm, *_p_bh  the p-values corrected for the number of predictors tested (the rows of the
                    table, each column on its own): Holm's step-down (family-wise error) and
                    Benjamini-Hochberg's step-up (false discovery rate) adjusted p-values
  partial_r, partial_p  the partial correlation controlling for log(parameters): the Pearson r of
                    the residuals of the predictor and of the metric, each least-squares fitted on
                    [1, log_params]; its p from Student's t with n - 3 degrees of freedom (NaN for
                    log_params itself, for a predictor that log_params determines, when log_params does
                    not vary, or for n < 4); corrected like the others (partial_p_holm, partial_p_bh)
  within_r, within_p, within_n  the seed-level analysis: Pearson r of predictor and metric after removing each
                    configuration's mean from both (configurations with >= 2 seeds), p from t with n - a - 1 df
                    (a = configurations). Structure (depth, lr, ...) cannot drive it: among seeds of one
                    configuration, does a member with more of the predictor generalise better?
  icc, anova_f, anova_p  how much of the predictor's spread lies between configurations: ICC(1) of a one-way
                    random-effects ANOVA over configurations (seeds as replicates), its F and p. Near 1: the
                    configurations differ beyond seed noise; near 0: the family's spread is seed noise
"""
import argparse
import csv
import json
import math
import os
import re
import sys
import tomllib

import h5py
import numpy as np
from scipy import stats

from coupling._paths import repository

SUMMARY_KIND = "libcoupling-study-member"
SUMMARY_VERSION = 2
HELDOUT = {"gpt": ("val_loss", False), "vit": ("test_accuracy", True)}
METRICS = ("val_loss", "bigram_val_loss", "test_accuracy", "test_loss", "train_accuracy", "train_loss",
           "parameters", "final_step", "wall_seconds", "measure_seconds", "overhead_fraction")
# (column, config.toml key): structural columns of study.csv, correlated where they vary.
STRUCTURE = (("depth", "layers"), ("width", "d-model"), ("lr", "lr"), ("steps", "steps"),
             ("weight_decay", "weight-decay"), ("warmup", "warmup"), ("batch", "batch"), ("heads", "heads"),
             ("dropout", "dropout"), ("context", "context"), ("patch", "patch"))
# config.toml keys that do not make two members different configurations.
NOT_CONFIGURATION = {"seed", "out", "log", "tensorboard", "threads", "device", "backend", "dist-timeout",
                     "check-every", "log-every", "ckpt-every"}
STATS = ("final", "peak", "peak_step", "at10", "at50", "auc")
SERIES = re.compile(r"^m_(offdiag|adjacent)_k(\d+)_(ujv|vju)_norm$")
# tidy columns a summary keeps per measured step ("trajectory"), beside the smoothed training loss and the
# summed learning rate: what the warm-up analysis (coupling.warmup_study) and a second reader need.
TRAJECTORY = tuple(f"m_{s}_k{k}_ujv_norm{suffix}" for s in ("offdiag", "adjacent") for k in (2, 10)
                   for suffix in ("", "_null", "_null_sd")) + ("lss", "lss_per_random_walk", "linearity",
                                                              "norm_growth_rate")
CORRELATION_COLUMNS = ("predictor", "n", "pearson_r", "pearson_p", "pearson_p_holm", "pearson_p_bh",
                       "spearman_rho", "spearman_p", "spearman_p_holm", "spearman_p_bh", "r2",
                       "partial_r", "partial_p", "partial_p_holm", "partial_p_bh",
                       "within_r", "within_p", "within_n", "icc", "anova_f", "anova_p")


# The repository root: a member's data path inside it is written relative to it.
REPOSITORY = repository() or os.getcwd()


class StudyError(Exception):
    pass


# ----------------------------------------------------------------------------------------------------------
# Statistics (tests/python/test_study_stats.py checks them)


def _adjusted(p, adjust_sorted):
    """p-values adjusted over their finite entries: adjust_sorted(ascending p) gives the adjusted
    values in that order. NaN stays NaN and does not count among the tests."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q = p[ok]
        order = np.argsort(q, kind="stable")
        result = np.empty(len(q))
        result[order] = adjust_sorted(q[order])
        out[ok] = result
    return out


def holm(p):
    """Holm's step-down adjusted p-values."""
    return _adjusted(p, lambda q: np.maximum.accumulate(np.minimum(1.0, (len(q) - np.arange(len(q))) * q)))


def benjamini_hochberg(p):
    """Benjamini-Hochberg's step-up adjusted p-values (q-values)."""
    def step_up(q):
        ranked = q * len(q) / np.arange(1, len(q) + 1)
        return np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return _adjusted(p, step_up)


def partial_correlation(x, y, z):
    """(r, p): Pearson r of x and y after each is least-squares fitted on [1, z]; p from t with n - 3 df.
    (NaN, NaN) when n < 4, z is constant, or z determines x or y (a residual with no variance left)."""
    x, y, z = (np.asarray(v, dtype=float) for v in (x, y, z))
    n = len(x)
    if n < 4 or np.ptp(z) == 0:
        return math.nan, math.nan
    design = np.column_stack([np.ones(n), z])
    residuals = []
    for v in (x, y):
        r = v - design @ np.linalg.lstsq(design, v, rcond=None)[0]
        if np.std(r) <= 1e-9 * max(np.std(v), np.finfo(float).tiny):
            return math.nan, math.nan
        residuals.append(r)
    r = float(np.corrcoef(*residuals)[0, 1])
    df = n - 3
    if abs(r) >= 1:
        return math.copysign(1.0, r), 0.0
    t = r * math.sqrt(df / (1 - r * r))
    return r, float(2 * stats.t.sf(abs(t), df))


def seed_anova(x, configs):
    """(icc, F, p) of a one-way random-effects ANOVA of x with the configurations as groups (the seeds are the
    replicates), over the finite values of the configurations with >= 2 of them: F = MS_between / MS_within on
    (a - 1, N - a) df and ICC(1) = (MS_between - MS_within) / (MS_between + (n0 - 1) MS_within), n0 the
    effective group size (N - sum n_i^2 / N) / (a - 1) for unequal groups. ICC near 1: the spread is between
    configurations; near 0 (or below): it is seed noise. NaN with fewer than 2 such configurations, or no
    variance within them."""
    x, configs = np.asarray(x, dtype=float), np.asarray(configs)
    ok = np.isfinite(x)
    groups = [x[ok & (configs == c)] for c in np.unique(configs[ok])]
    groups = [g for g in groups if len(g) >= 2]
    a, n = len(groups), sum(len(g) for g in groups)
    if a < 2:
        return math.nan, math.nan, math.nan
    grand = np.concatenate(groups).mean()
    ms_between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (a - 1)
    ms_within = sum(((g - g.mean()) ** 2).sum() for g in groups) / (n - a)
    if ms_within <= 0:
        return math.nan, math.nan, math.nan
    n0 = (n - sum(len(g) ** 2 for g in groups) / n) / (a - 1)
    f = ms_between / ms_within
    icc = (ms_between - ms_within) / (ms_between + (n0 - 1) * ms_within)
    return float(icc), float(f), float(stats.f.sf(f, a - 1, n - a))


def within_configuration(x, y, configs):
    """(r, p, n): the seed-level analysis. Pearson r of x and y after subtracting each configuration's mean
    from both (members of configurations with >= 2 pairs of finite values), p from t with n - a - 1 df (a
    configuration means removed). It asks whether, among seeds of one configuration, a member with more of x
    has more of y: structure (depth, lr, ...) cannot drive it. NaN when undefined."""
    x, y, configs = np.asarray(x, dtype=float), np.asarray(y, dtype=float), np.asarray(configs)
    ok = np.isfinite(x) & np.isfinite(y)
    rx, ry, a = [], [], 0
    for c in np.unique(configs[ok]):
        member = ok & (configs == c)
        if member.sum() >= 2:
            rx.append(x[member] - x[member].mean())
            ry.append(y[member] - y[member].mean())
            a += 1
    if not rx:
        return math.nan, math.nan, 0
    rx, ry = np.concatenate(rx), np.concatenate(ry)
    n, df = len(rx), len(rx) - a - 1
    if df < 1 or np.std(rx) <= 1e-12 * max(np.abs(x[ok]).max(), 1e-300) or np.std(ry) == 0:
        return math.nan, math.nan, n
    r = float(np.sum(rx * ry) / math.sqrt(np.sum(rx ** 2) * np.sum(ry ** 2)))
    if abs(r) >= 1:
        return math.copysign(1.0, r), 0.0, n
    t = r * math.sqrt(df / (1 - r * r))
    return r, float(2 * stats.t.sf(abs(t), df)), n


def series_predictors(step, value, final_step, maximise=False):
    """{stat: value} of one time series (see the module doc)."""
    step, value = np.asarray(step, dtype=float), np.asarray(value, dtype=float)
    out = dict.fromkeys(STATS, math.nan)
    ok = np.isfinite(value)
    if not ok.any() or final_step <= 0:
        return out
    s, v = step[ok], value[ok]
    fraction = s / final_step
    if step[-1] == final_step and ok[-1]:
        out["final"] = float(value[-1])
    i = int(np.argmax(v) if maximise else np.argmin(v))
    out["peak"], out["peak_step"] = float(v[i]), float(s[i])
    for name, f in (("at10", 0.1), ("at50", 0.5)):
        if fraction[0] <= f <= fraction[-1]:
            out[name] = float(np.interp(f, fraction, v))
    if len(v) >= 2 and s[0] == 0 and s[-1] == final_step:
        out["auc"] = float(np.sum((v[1:] + v[:-1]) * np.diff(fraction)) / 2)
    return out


# ----------------------------------------------------------------------------------------------------------
# Members


def plain(value):
    """A JSON-safe float: None for NaN or infinity."""
    value = float(value)
    return value if math.isfinite(value) else None


def short(value):
    """plain() to 6 significant digits: a trajectory's values, kept small enough to commit."""
    value = plain(value)
    return None if value is None else float(f"{value:.6g}")


def unplain(value):
    return math.nan if value is None else float(value)


def summarise(directory):
    """The summary of one finished member directory (the JSON written to summaries/MEMBER.json)."""
    from coupling.log import tidy

    summary = json.load(open(os.path.join(directory, "summary.json")))
    with open(os.path.join(directory, "config.toml"), "rb") as f:
        config = tomllib.load(f)
    model = summary.get("model", "gpt")
    if model not in HELDOUT:
        raise StudyError(f"{directory}: model {model!r} in summary.json; study.py knows {', '.join(HELDOUT)}")
    metric, higher = HELDOUT[model]
    if metric not in summary:
        raise StudyError(f"{directory}/summary.json has no {metric} (the held-out metric of a {model} family)")
    df = tidy(os.path.join(directory, "coupling.h5"))
    final_step = int(summary["final_step"])
    step = df["step"].to_numpy()
    series = sorted((c for c in df.columns if SERIES.match(c)),
                    key=lambda c: (SERIES.match(c)[1] != "offdiag", int(SERIES.match(c)[2]), SERIES.match(c)[3]))
    if "lss" in df and "lss_random_walk" in df:
        df["lss_per_random_walk"] = df["lss"] / df["lss_random_walk"]
    for column in series:  # the excess over the uncoupled null (schema-4 logs): < 0 = coupled
        if column + "_null" in df:
            df[column + "_excess"] = df[column] - df[column + "_null"]
    predictors = {}
    columns = series + [c + "_excess" for c in series] + ["lss", "lss_per_random_walk", "linearity", "norm_growth_rate"]
    for column in columns:
        if column not in df:
            continue
        values = series_predictors(step, df[column].to_numpy(), final_step, maximise=column == "norm_growth_rate")
        base = column.removesuffix("_excess")
        if base + "_null" in df and not leaves_null_band(df, base, values["peak_step"]):
            values["peak"] = values["peak_step"] = math.nan  # no dip: the lowest value is inside the null's band
        predictors.update({f"{column}_{stat}": plain(v) for stat, v in values.items()})
    curves = [c for c in series if SERIES.match(c)[1] == "offdiag" and SERIES.match(c)[3] == "ujv"]
    curve = None  # a 1-block member's coupling is all NaN: no curve
    if curves:
        column = min(curves, key=lambda c: int(SERIES.match(c)[2]))
        if np.isfinite(df[column].to_numpy()).any():
            curve = {"column": column, "step": [int(s) for s in step], "value": [plain(v) for v in df[column]]}
    trajectory = {"step": [int(v) for v in step]}
    trajectory.update({c: [short(v) for v in df[c]] for c in TRAJECTORY if c in df})
    trajectory.update(training_curves(os.path.join(directory, "coupling.h5"), step))
    config.pop("out", None)
    if os.path.isabs(str(config.get("data", ""))):  # no machine's paths in a summary meant to be committed
        root = REPOSITORY
        inside = os.path.commonpath([root, config["data"]]) == root
        config["data"] = os.path.relpath(config["data"], root) if inside else os.path.basename(config["data"])
    return {
        "kind": SUMMARY_KIND, "version": SUMMARY_VERSION,
        "member": os.path.basename(os.path.normpath(directory)), "model": model,
        "heldout_metric": metric, "higher_is_better": higher, "heldout": summary[metric],
        "metrics": {k: summary[k] for k in METRICS if k in summary},
        "config": config, "measurements": len(df), "predictors": predictors, "curve": curve,
        "trajectory": trajectory,
    }


def leaves_null_band(df, column, peak_step):
    """Whether m at its lowest (step `peak_step`) is below its uncoupled null by more than 2 null sd: a "dip"
    that is not one stays inside the band, and its step is no predictor."""
    if not math.isfinite(peak_step):
        return False
    row = df.index[df["step"] == peak_step][0]
    return bool(df.at[row, column] < df.at[row, column + "_null"] - 2 * df.at[row, column + "_null_sd"])


def training_curves(path, steps):
    """{"train_loss_smooth": mean batch loss of the 20 updates before each measured step, "lr_sum": the sum of
    the learning rates of the updates completed at each step}, from the log's /train group (empty without one)."""
    from coupling.log import open_log

    try:
        train = open_log(path, group="train")
    except OSError:
        return {}
    if "loss" not in train or "lr" not in train:
        return {}
    updates, loss, lr = (train[c].values for c in ("step", "loss", "lr"))
    order = np.argsort(updates)
    updates, loss, lr = updates[order], loss[order], lr[order]
    smooth, lr_sum = [], []
    for s in steps:  # updates 0..s-1 are complete at step s
        done = updates < s
        smooth.append(short(loss[done][-20:].mean()) if done.any() else None)
        lr_sum.append(short(lr[done].sum()))
    return {"train_loss_smooth": smooth, "lr_sum": lr_sum}


def gather(root):
    """Summaries of every finished member of a study directory; writes ROOT/summaries/MEMBER.json."""
    members = [d for d in sorted(os.listdir(root)) if os.path.isfile(os.path.join(root, d, "summary.json"))]
    summaries = []
    for name in members:
        try:
            summaries.append(summarise(os.path.join(root, name)))
        except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError) as e:
            raise StudyError(f"{os.path.join(root, name)}: cannot read the member ({e})") from None
    target = os.path.join(root, "summaries")
    os.makedirs(target, exist_ok=True)
    written = set()
    for s in summaries:
        path = os.path.join(target, s["member"] + ".json")
        with open(path + ".tmp", "w") as f:
            json.dump(s, f, indent=1, allow_nan=False)
            f.write("\n")
        os.replace(path + ".tmp", path)
        written.add(os.path.basename(path))
    for stale in sorted(set(os.listdir(target)) - written):  # a member that is no longer finished
        if stale.endswith(".json") and is_summary(os.path.join(target, stale)):
            os.remove(os.path.join(target, stale))
    return load_summaries(target)  # the tables come from the JSON, as with --from-summaries


def is_summary(path):
    try:
        return json.load(open(path)).get("kind") == SUMMARY_KIND
    except (OSError, ValueError, AttributeError):
        return False


def load_summaries(directory):
    if not os.path.isdir(directory):
        raise StudyError(f"{directory} is not a directory of member summaries (study.py STUDY_DIR writes "
                         "STUDY_DIR/summaries)")
    summaries = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        try:
            s = json.load(open(path))
        except (OSError, ValueError) as e:
            raise StudyError(f"{path}: not readable JSON ({e})") from None
        if not isinstance(s, dict) or s.get("kind") != SUMMARY_KIND:
            raise StudyError(f"{path} is not a study member summary (no \"kind\": \"{SUMMARY_KIND}\")")
        if s.get("version", 0) > SUMMARY_VERSION:
            raise StudyError(f"{path}: summary version {s['version']} is newer than this study.py knows")
        summaries.append(s)
    models = sorted({s["model"] for s in summaries})
    if len(models) > 1:
        raise StudyError(f"{directory} mixes {' and '.join(models)} members; a study is one family")
    return summaries


def rows_of(summaries):
    """(rows, metric name, higher_is_better): one study.csv row per member."""
    metric, higher = summaries[0]["heldout_metric"], summaries[0]["higher_is_better"]
    keys = [tuple(sorted((k, json.dumps(v)) for k, v in s["config"].items() if k not in NOT_CONFIGURATION))
            for s in summaries]
    index = {}
    for key in keys:
        index.setdefault(key, len(index))
    rows = []
    for s, key in zip(summaries, keys):
        params = float(s["metrics"]["parameters"])
        row = {"member": s["member"], "config": index[key], "seed": s["config"].get("seed", math.nan),
               metric: float(s["heldout"]), "params": params, "log_params": math.log(params)}
        for column, key_ in STRUCTURE:
            value = s["config"].get(key_)
            row[column] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
        row.update({k: unplain(v) for k, v in s["predictors"].items()})
        rows.append(row)
    columns = []
    for row in rows:  # members may lack predictors others have (a different K grid): NaN there
        columns += [c for c in row if c not in columns]
    for row in rows:
        for c in columns:
            row.setdefault(c, math.nan)
    rows = [{c: row[c] for c in columns} for row in rows]
    return rows, metric, higher


def correlate(rows, metric):
    """One dict per predictor tested (CORRELATION_COLUMNS)."""
    columns = list(rows[0])
    y_all = np.array([r[metric] for r in rows], dtype=float)
    logp_all = np.array([r["log_params"] for r in rows], dtype=float)
    configs = np.array([r["config"] for r in rows])
    skip = {"member", "config", "seed", metric, "params"}
    table = []
    for name in columns:
        if name in skip:
            continue
        x_all = np.array([r[name] for r in rows], dtype=float)
        ok = np.isfinite(x_all) & np.isfinite(y_all)
        if ok.sum() < 3 or np.ptp(x_all[ok]) == 0 or np.ptp(y_all[ok]) == 0:
            continue
        x, y = x_all[ok], y_all[ok]
        pearson = stats.pearsonr(x, y)
        spearman = stats.spearmanr(x, y)
        partial = ((math.nan, math.nan) if name == "log_params" else partial_correlation(x, y, logp_all[ok]))
        icc, f, f_p = seed_anova(x_all, configs)
        within = within_configuration(x_all, y_all, configs)
        table.append({"predictor": name, "n": int(ok.sum()),
                      "pearson_r": float(pearson[0]), "pearson_p": float(pearson[1]),
                      "spearman_rho": float(spearman[0]), "spearman_p": float(spearman[1]),
                      "r2": float(pearson[0]) ** 2, "partial_r": partial[0], "partial_p": partial[1],
                      "within_r": within[0], "within_p": within[1], "within_n": within[2],
                      "icc": icc, "anova_f": f, "anova_p": f_p})
    for kind in ("pearson", "spearman", "partial"):
        p = [t[f"{kind}_p"] for t in table]
        for t, h, b in zip(table, holm(p), benjamini_hochberg(p)):
            t[f"{kind}_p_holm"], t[f"{kind}_p_bh"] = float(h), float(b)
    return [{c: t[c] for c in CORRELATION_COLUMNS} for t in table]


# ----------------------------------------------------------------------------------------------------------
# Output


def number(value):
    """CSV text of a value: floats in their shortest round-trip form, NaN as 'nan'."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def write_csv(path, rows, header=None):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header or list(rows[0]))
        for row in rows:
            writer.writerow([number(v) for v in row.values()])


def write_h5(path, rows, table, summaries, info):
    with h5py.File(path, "w") as f:
        for key, value in info.items():
            f.attrs[key] = value
        g = f.create_group("members")
        g["member"] = np.array([r["member"] for r in rows], dtype=h5py.string_dtype())
        for c in list(rows[0])[1:]:
            g[c] = np.array([r[c] for r in rows], dtype=float)
        g["curve_column"] = np.array([(s["curve"] or {}).get("column", "") for s in summaries],
                                     dtype=h5py.string_dtype())
        c = f.create_group("correlations")
        c["predictor"] = np.array([t["predictor"] for t in table], dtype=h5py.string_dtype())
        for key in CORRELATION_COLUMNS[1:]:
            c[key] = np.array([t[key] for t in table], dtype=int if key in ("n", "within_n") else float)
        curves = f.create_group("curves")
        member, step, value = [], [], []
        for i, s in enumerate(summaries):
            if s["curve"]:
                member += [i] * len(s["curve"]["step"])
                step += s["curve"]["step"]
                value += [unplain(v) for v in s["curve"]["value"]]
        curves["member"] = np.array(member, dtype=np.int64)
        curves["step"] = np.array(step, dtype=np.int64)
        curves["value"] = np.array(value, dtype=float)
        curves.attrs["description"] = ("per member (index into /members), the depth coupling m_K at its "
                                       "smallest K (mean off-diagonal, ujv, norm) against step; "
                                       "/members/curve_column names it")


def read_study(path):
    """study.h5 (write_h5) as {"attrs": {...}, "members": {column: array}, "correlations": {column: array},
    "curves": {column: array}}, strings decoded. Raises OSError (and KeyError for a file without those groups)."""
    from coupling import log

    with h5py.File(path, "r") as f:
        out = {"attrs": log.attributes(f)}
        for group in ("members", "correlations", "curves"):
            out[group] = {name: log.plain(ds[()]) for name, ds in f[group].items()}
    return out


def p_text(p):
    if not math.isfinite(p):
        return "   -  "
    return f"{p:6.3f}" if p >= 0.001 else f"{0:6d}" if p == 0 else f"{p:6.0e}"


def f_text(x, width=6, digits=3):
    return f"{'-':>{width}s}" if not math.isfinite(x) else f"{x:{width}.{digits}f}"


def report(rows, table, metric, higher, info):
    y = np.array([r[metric] for r in rows])
    direction = "higher" if higher else "lower"
    print(f"{metric} ({direction} is better) against each predictor over {len(rows)} {info['model']} members "
          f"in {info['configs']} configurations ({metric} {y.min():.4f}..{y.max():.4f}); {len(table)} predictors "
          f"tested, p corrected for {len(table)} tests (Holm; BH = Benjamini-Hochberg)")
    print(f"seed noise of {metric}: ICC {f_text(info['heldout_icc'], 1, 2)}, one-way ANOVA over configurations "
          f"F {f_text(info['heldout_anova_f'], 1, 1)}, p {p_text(info['heldout_anova_p']).strip()} (ICC near 1: "
          "configurations differ beyond seed noise)")
    print(f"sign: {'r > 0' if higher else 'r < 0'} = the predictor goes with better generalisation; partial = "
          "controlling for log(params) (t, n - 3 df); within = seed-level r after removing configuration means "
          "(t, n - a - 1 df); ICC of the predictor over configurations")
    if not table:
        print(f"no predictor to correlate: {metric} is the same for every member, or no predictor is defined "
              "for 3 members and varies")
        return
    head = (f"{'predictor':34s} {'n':>3s} {'r':>6s} {'p':>6s} {'Holm':>6s} {'BH':>6s} {'rho':>6s} {'BH':>6s} "
            f"{'R^2':>5s} | {'partial':>7s} {'p':>6s} {'Holm':>6s} {'BH':>6s} | {'within':>6s} {'p':>6s} | "
            f"{'ICC':>5s}")
    print(head)
    print("-" * len(head))
    order = sorted(table, key=lambda t: (not math.isfinite(t["partial_r"]),
                                         -abs(t["partial_r"]) if math.isfinite(t["partial_r"]) else 0, -t["r2"]))
    for t in order:
        print(f"{t['predictor']:34s} {t['n']:3d} {f_text(t['pearson_r'])} {p_text(t['pearson_p'])} "
              f"{p_text(t['pearson_p_holm'])} {p_text(t['pearson_p_bh'])} {f_text(t['spearman_rho'])} "
              f"{p_text(t['spearman_p_bh'])} {f_text(t['r2'], 5, 2)} | {f_text(t['partial_r'], 7)} "
              f"{p_text(t['partial_p'])} {p_text(t['partial_p_holm'])} {p_text(t['partial_p_bh'])} | "
              f"{f_text(t['within_r'])} {p_text(t['within_p'])} | {f_text(t['icc'], 5, 2)}")


def tables(summaries, out):
    if len(summaries) < 3:
        raise StudyError(f"{len(summaries)} finished members; correlations need at least 3")
    rows, metric, higher = rows_of(summaries)
    table = correlate(rows, metric)
    icc, f, f_p = seed_anova([r[metric] for r in rows], [r["config"] for r in rows])
    info = {"model": summaries[0]["model"], "heldout_metric": metric, "higher_is_better": int(higher),
            "members": len(rows), "configs": len({r["config"] for r in rows}), "tested": len(table),
            "heldout_icc": icc, "heldout_anova_f": f, "heldout_anova_p": f_p}
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, "study.csv"), rows)
    write_csv(os.path.join(out, "study_correlations.csv"), table, CORRELATION_COLUMNS)
    write_h5(os.path.join(out, "study.h5"), rows, table, summaries, info)
    report(rows, table, metric, higher, info)
    print(f"study.py: wrote {out}/study.csv, {out}/study_correlations.csv and {out}/study.h5")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="study.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", nargs="?", help="a study directory (scripts/study.sh --out)")
    parser.add_argument("--from-summaries", metavar="DIR", help="re-derive the tables from DIR/*.json alone")
    parser.add_argument("--out", help="with --from-summaries: where the tables go (default DIR)")
    args = parser.parse_args(argv)
    if bool(args.study) == bool(args.from_summaries):
        parser.error("give a study directory or --from-summaries DIR")
    try:
        if args.from_summaries:
            tables(load_summaries(args.from_summaries), args.out or args.from_summaries)
        else:
            if args.out:
                parser.error("--out goes with --from-summaries (a study's tables go to its directory)")
            if not os.path.isdir(args.study):
                raise StudyError(f"{args.study} is not a directory")
            try:
                import pandas  # noqa: F401
                import xarray  # noqa: F401
            except ImportError as e:
                raise StudyError(f"reading the logs needs pandas and xarray ({e}): run /usr/bin/python3 "
                                 "scripts/study.py (Debian's python3-pandas, python3-xarray); --from-summaries "
                                 "needs neither") from None
            tables(gather(args.study), args.study)
    except StudyError as e:
        print(f"study.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
