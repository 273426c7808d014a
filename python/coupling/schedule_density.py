"""How dense must coupling-train's measurement schedule be to resolve the early coupling dip, and at what cost?

Usage: scripts/schedule_density.py LOG_OR_STUDY_DIR... [--k K] [--schedule SPEC]... [--members] [--csv]
                                   [--train PATH]
(coupling-schedule-density is the same command where the package is installed.)

Each argument is a coupling log (coupling.h5), a run directory holding one, or a study directory
(scripts/study.sh's OUT) whose member directories hold one. A member's total steps T come from its
summary.json (final_step), else its config.toml (steps). A log that a run is still writing reads too
(coupling.log, SWMR mode), but a member is used only when its last measured step is T (finished
measuring); the others are listed as skipped.

The log's measured steps are the dense schedule. Every coarser schedule is emulated by keeping the
measured steps it would have measured: the steps coupling-train's MeasurementSchedule::due gives for
it over T steps (step 0, step T, multiples of every:M, steps:..., the log-spaced log:N), asked of
coupling-train itself: `coupling-train --print-schedule SPEC --steps T` (--train PATH, else
$COUPLING_TRAIN, else build/bin/coupling-train of the repository; one run per schedule and T, about
0.5 s each, several at once). A schedule is used for a member only when all of its steps were measured.
Without --schedule the schedules are log:N for every N from 2 to the logged log:P (64 if unknown)
whose steps were all measured, each alone and with the logged every:M, every:M alone, and the logged
schedule itself (the reference). The logged schedule is asked for too and checked against the steps
measured (a mismatch is reported: the log was then not measured with that schedule).

Per member and schedule, for the depth coupling m_K (mean off-diagonal, ujv, norm: coupling.log.tidy's
m_offdiag_kK_ujv_norm; K the log's smallest unless --k) and for the line-shape score LSS:
  min, min_step      the minimum over the schedule's steps and its step (non-finite values skipped)
  dense min, step    the same over every measured step
  dip err            (min - dense min) / (value at step 0 - dense min): the fraction of the dip's depth
                     that the schedule misses (0 when it finds the dense minimum; NaN with no dip)
  step ok            min_step within a factor 1.5 of the dense one (1/1.5 <= ratio <= 1.5)
  overhead           measurements x the member's mean measure_seconds / its training seconds (the sum
                     of /measurement/train_seconds, which excludes measurements from schema 2 on; schema 1:
                     summary.json wall_seconds - measure_seconds): the overhead fraction that schedule has
The table aggregates over members per schedule: n members, measurements (mean), mean and max dip err,
fraction of members with step ok, for m_K and LSS, and mean and max overhead. --members adds the
per-member rows; --csv prints the tables as CSV (a blank line between them with --members).

Exit status: 0 with a table, 1 when no member is finished, 2 with one line on stderr for bad input
(no such path, no log, not a coupling log, a K the log lacks, a bad --schedule, no coupling-train).
"""
import argparse
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import tomllib

import numpy as np

from coupling import log as coupling_log
from coupling._paths import ToolNotFound, coupling_train

STEP_TOLERANCE = 1.5


class InputError(Exception):
    """Bad input: the message is the one line printed before exiting 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage + error
        print(f"schedule_density.py: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


# ----------------------------------------------------------------------------------------------------------
# Schedules, from coupling-train itself (MeasurementSchedule::due in libcoupling/src/training/schedule.cpp)

_TRAIN = None  # the coupling-train binary (--train; else coupling._paths.coupling_train's default)
_STEPS = {}  # (binary, schedule text, total) -> the due steps, or the ValueError it raised


def use_train(path):
    """Sets the coupling-train binary that computes the schedules (None: $COUPLING_TRAIN, else the build's)."""
    global _TRAIN
    _TRAIN = path


def _print_schedules(train, texts, total):
    """[the steps of each text] from one run of coupling-train, or None when it refused one of them."""
    command = [train] + [a for t in texts for a in ("--print-schedule", t)] + ["--steps", str(total)]
    try:
        p = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolNotFound(f"cannot run {train} --print-schedule ({e})") from None
    lines = p.stdout.splitlines()
    if p.returncode != 0 or len(lines) != len(texts):
        return None
    try:
        return [np.array([int(v) for v in line.split()], dtype=np.int64) for line in lines]
    except ValueError:
        return None


def _print_schedule(train, text, total):
    try:
        p = subprocess.run([train, "--print-schedule", text, "--steps", str(total)], capture_output=True, text=True,
                           timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ToolNotFound(f"cannot run {train} --print-schedule ({e})") from None
    if p.returncode == 2:
        lines = (p.stderr.strip() or p.stdout.strip()).splitlines()
        return ValueError(lines[-1] if lines else f"{train} rejected the schedule '{text}'")
    try:
        if p.returncode != 0:
            raise ValueError
        return np.array([int(line) for line in p.stdout.split()], dtype=np.int64)
    except ValueError:
        first = (p.stderr.strip().splitlines() or [""])[0]
        raise ToolNotFound(f"{train} --print-schedule '{text}' --steps {total} exited {p.returncode} "
                           f"({first or 'no message'}); is it a coupling-train with --print-schedule?") from None


def schedules_steps(texts, total):
    """{text: the steps coupling-train measures over `total` steps with --measure-schedule text} (checkpoints left
    out): `coupling-train --print-schedule TEXT --steps TOTAL`, several at once, each asked once per process.
    A bad schedule maps to the ValueError carrying coupling-train's one line. Raises ToolNotFound."""
    if not texts:
        return {}
    train = coupling_train(_TRAIN)
    if (train, None, None) not in _STEPS:  # once per binary: exit 2 also means "no such flag" to an older one
        probe = _print_schedule(train, "every:1", 1)
        if isinstance(probe, ValueError) or probe.tolist() != [0, 1]:
            raise ToolNotFound(f"{train} --print-schedule every:1 --steps 1 did not print 0 and 1 ({probe}); "
                               "build a coupling-train that has --print-schedule, or pass one with --train")
        _STEPS[(train, None, None)] = probe
    wanted = [t for t in dict.fromkeys(texts) if (train, t, total) not in _STEPS]
    together = _print_schedules(train, wanted, total) if wanted else None
    if together is not None:  # one run for every schedule
        _STEPS.update({(train, text, total): steps for text, steps in zip(wanted, together)})
    elif wanted:  # one of them is refused: ask one by one, so each gets its own verdict
        workers = max(1, min(len(wanted), os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for text, result in zip(wanted, pool.map(lambda t: _print_schedule(train, t, total), wanted)):
                _STEPS[(train, text, total)] = result
    return {t: _STEPS[(train, t, total)] for t in texts}


def schedule_steps(text, total):
    """The steps coupling-train measures over `total` steps with --measure-schedule `text` (sorted, int64).
    Raises ValueError (coupling-train's line) for a bad schedule, ToolNotFound without coupling-train."""
    result = schedules_steps([text], total)[text]
    if isinstance(result, ValueError):
        raise ValueError(str(result))
    return result


def logged_parts(text):
    """(M of every:M, N of log:N) named in a schedule string, 0 where absent (coupling-train checks the string)."""
    parts = {"every": 0, "log": 0}
    for item in text.split():
        kind, _, value = item.partition(":")
        if kind in parts and value.isdigit():
            parts[kind] = int(value)
    return parts["every"], parts["log"]


# ----------------------------------------------------------------------------------------------------------
# The computation, on arrays


def series_minimum(steps, values):
    """(minimum, its step) over the finite values; the earliest step on ties; (nan, -1) without one."""
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        return math.nan, -1
    index = np.flatnonzero(finite)[np.argmin(values[finite])]
    return float(values[index]), int(steps[index])


def step_within(step, reference, factor=STEP_TOLERANCE):
    """Whether `step` lies within a factor `factor` of `reference` (both 0 counts; one 0 does not)."""
    if step < 0 or reference < 0:
        return False
    if step == 0 or reference == 0:
        return step == reference
    return 1.0 / factor <= step / reference <= factor


def dip_error(dense_steps, dense_values, subset_steps):
    """How well the measurements at `subset_steps` (a subset of `dense_steps`) find the minimum of the dense series.

    Returns {min, min_step, dense_min, dense_min_step, start, depth, abs_err, rel_err, step_ok}: depth = the value at
    step 0 (the first measured step) - the dense minimum; rel_err = abs_err / depth (0 when abs_err is 0, NaN when
    there is no dip). Raises ValueError when a subset step was not measured."""
    dense_steps = np.asarray(dense_steps, dtype=np.int64)
    dense_values = np.asarray(dense_values, dtype=float)
    subset_steps = np.asarray(subset_steps, dtype=np.int64)
    keep = np.isin(dense_steps, subset_steps)
    missing = np.setdiff1d(subset_steps, dense_steps)
    if missing.size:
        raise ValueError(f"steps {missing.tolist()[:8]} were not measured")
    dense_min, dense_step = series_minimum(dense_steps, dense_values)
    sub_min, sub_step = series_minimum(dense_steps[keep], dense_values[keep])
    start = float(dense_values[np.argmin(dense_steps)]) if dense_steps.size else math.nan
    depth = start - dense_min
    abs_err = sub_min - dense_min
    if abs_err == 0:
        rel_err = 0.0
    elif math.isfinite(depth) and depth > 0:
        rel_err = abs_err / depth
    else:
        rel_err = math.nan
    return {"min": sub_min, "min_step": sub_step, "dense_min": dense_min, "dense_min_step": dense_step,
            "start": start, "depth": depth, "abs_err": abs_err, "rel_err": rel_err,
            "step_ok": step_within(sub_step, dense_step)}


def overhead_fraction(measurements, mean_measure_seconds, train_seconds):
    """The overhead of a schedule: its measurements' time over the training time."""
    if not train_seconds > 0:
        return math.nan
    return measurements * mean_measure_seconds / train_seconds


def evaluate_member(steps, series, total, schedules, mean_measure_seconds, train_seconds):
    """Rows, one per schedule whose steps were all measured: {schedule, measurements, overhead, and per series name
    NAME_min, NAME_min_step, NAME_dense_min, NAME_dense_min_step, NAME_depth, NAME_abs_err, NAME_rel_err,
    NAME_step_ok}. `series`: {name: values at `steps`}; `schedules`: schedule strings."""
    steps = np.asarray(steps, dtype=np.int64)
    rows = []
    computed = schedules_steps(schedules, total)
    for text in schedules:
        wanted = computed[text]
        if isinstance(wanted, ValueError):
            continue
        if not np.isin(wanted, steps).all():
            continue
        row = {"schedule": text, "measurements": int(wanted.size),
               "overhead": overhead_fraction(wanted.size, mean_measure_seconds, train_seconds)}
        for name, values in series.items():
            for key, value in dip_error(steps, values, wanted).items():
                if key != "start":
                    row[f"{name}_{key}"] = value
        rows.append(row)
    return rows


def default_schedules(dense_text, steps, total):
    """log:N for N = 2..P whose steps were all measured, each also with the logged every:M; every:M; the logged one."""
    every, points = logged_parts(dense_text) if dense_text else (0, 64)
    measured = np.asarray(steps, dtype=np.int64)
    candidates = [f"log:{n}" for n in range(2, max(points, 8) + 1)]
    computed = schedules_steps(candidates, total)
    out = []
    for text in candidates:
        if not isinstance(computed[text], ValueError) and np.isin(computed[text], measured).all():
            out.append(text)
            if every:
                out.append(f"{text} every:{every}")
    if every:
        out.append(f"every:{every}")
    if dense_text and dense_text not in out:
        out.append(dense_text)
    return out


def aggregate(rows, names):
    """Per schedule (in first-seen order): members, measurements, NAME_err_mean, NAME_err_max, NAME_step_ok,
    overhead_mean, overhead_max."""
    order, groups = [], {}
    for row in rows:
        if row["schedule"] not in groups:
            order.append(row["schedule"])
            groups[row["schedule"]] = []
        groups[row["schedule"]].append(row)
    out = []
    for text in order:
        group = groups[text]
        agg = {"schedule": text, "members": len(group),
               "measurements": float(np.mean([r["measurements"] for r in group]))}
        for name in names:
            errors = np.array([r[f"{name}_rel_err"] for r in group], dtype=float)
            finite = errors[np.isfinite(errors)]
            agg[f"{name}_err_mean"] = float(finite.mean()) if finite.size else math.nan
            agg[f"{name}_err_max"] = float(finite.max()) if finite.size else math.nan
            agg[f"{name}_step_ok"] = float(np.mean([bool(r[f"{name}_step_ok"]) for r in group]))
        overheads = np.array([r["overhead"] for r in group], dtype=float)
        agg["overhead_mean"] = float(np.nanmean(overheads)) if np.isfinite(overheads).any() else math.nan
        agg["overhead_max"] = float(np.nanmax(overheads)) if np.isfinite(overheads).any() else math.nan
        out.append(agg)
    return out


# ----------------------------------------------------------------------------------------------------------
# Reading members


def find_logs(arguments):
    """[(member name, log path, member directory)] of the command-line arguments. Raises InputError."""
    found = []
    for arg in arguments:
        if os.path.isfile(arg):
            found.append((os.path.basename(os.path.dirname(os.path.abspath(arg))) or arg, arg,
                          os.path.dirname(os.path.abspath(arg))))
        elif os.path.isdir(arg):
            if os.path.isfile(os.path.join(arg, "coupling.h5")):
                found.append((os.path.basename(os.path.abspath(arg)), os.path.join(arg, "coupling.h5"), arg))
                continue
            members = sorted(d for d in os.listdir(arg) if os.path.isfile(os.path.join(arg, d, "coupling.h5")))
            if not members:
                raise InputError(f"{arg}: a directory with no coupling.h5 and no member directories holding one; "
                                 "pass a coupling log, a run directory or a study directory")
            found += [(d, os.path.join(arg, d, "coupling.h5"), os.path.join(arg, d)) for d in members]
        else:
            raise InputError(f"{arg}: no such file or directory; pass a coupling log, a run directory or a study "
                             "directory")
    return found


def member_facts(directory):
    """(total steps or None, logged schedule text or None, summary dict or None) from summary.json and config.toml."""
    summary = config = None
    try:
        with open(os.path.join(directory, "summary.json")) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(directory, "config.toml"), "rb") as f:
            config = tomllib.load(f)
    except (OSError, ValueError):
        pass
    total = None
    if summary and isinstance(summary.get("final_step"), int):
        total = summary["final_step"]
    elif config and isinstance(config.get("steps"), int):
        total = config["steps"]
    text = config.get("measure-schedule") if config else None
    return total, (text or None), summary


def read_member(name, path, directory, k):
    """{name, steps, m, lss, measure_seconds, train_seconds, total, logged, scheduled, k, notes} of one member.
    Raises InputError for a file that is not a coupling log or lacks the K asked for."""
    variables = coupling_log.TIDY_VARIABLES + ("train_seconds", "scheduled_step")
    try:
        ds = coupling_log.open_log(path, group="all", variables=variables)
        df = coupling_log.tidy(ds)
    except (OSError, RuntimeError) as e:  # LogError included
        raise InputError(str(e)) from None
    ks = sorted({int(c.split("_")[2][1:]) for c in df.columns if c.startswith("m_offdiag_k") and c.endswith("_ujv_norm")})
    use_k = k if k is not None else (ks[0] if ks else None)
    column = f"m_offdiag_k{use_k}_ujv_norm"
    if column not in df.columns:
        raise InputError(f"{path}: no m_K for K = {use_k} (mean off-diagonal, ujv, norm); its K: "
                         f"{', '.join(map(str, ks)) or 'none'}")
    total, logged, summary = member_facts(directory)
    steps = df["step"].to_numpy(np.int64)
    version = int(ds.attrs.get("schema_version", 2))
    measure = df["measure_seconds"].to_numpy(float) if "measure_seconds" in df else np.full(len(df), np.nan)
    train = ds["train_seconds"].values.astype(float) if "train_seconds" in ds else None
    notes = []
    if version >= 2 and train is not None:
        train_seconds = float(np.nansum(train))
    elif summary and "wall_seconds" in summary and "measure_seconds" in summary:
        train_seconds = float(summary["wall_seconds"]) - float(summary["measure_seconds"])
    elif train is not None:  # schema 1: train_seconds included the previous measurement
        train_seconds = float(np.nansum(train) - np.nansum(measure[:-1]))
    else:
        train_seconds = math.nan
    if summary and "wall_seconds" in summary and "measure_seconds" in summary and version >= 2:
        other = float(summary["wall_seconds"]) - float(summary["measure_seconds"])
        if other > 0 and abs(other - train_seconds) > 0.05 * other:
            notes.append(f"training seconds: {train_seconds:.1f} in the log, {other:.1f} in summary.json")
    scheduled = ds["scheduled_step"].values.astype(np.int64) if "scheduled_step" in ds else steps
    if not np.array_equal(scheduled, steps):
        notes.append(f"{int(np.sum(scheduled != steps))} measurements deferred (scheduled_step < step)")
    return {"name": name, "path": path, "steps": steps, "m": df[column].to_numpy(float),
            "lss": df["lss"].to_numpy(float) if "lss" in df else np.full(len(df), np.nan),
            "measure_seconds": float(np.nanmean(measure)) if np.isfinite(measure).any() else math.nan,
            "train_seconds": train_seconds, "total": total, "logged": logged, "k": use_k, "notes": notes,
            "summary_overhead": summary.get("overhead_fraction") if summary else None}


def finished(member):
    """(True, "") for a member whose last measured step is its total; else (False, why)."""
    if member["total"] is None:
        return False, "total steps unknown (no summary.json or config.toml beside the log)"
    if not len(member["steps"]):
        return False, f"no measurement yet (of {member['total']} steps)"
    last = int(member["steps"][-1])
    if last != member["total"]:
        return False, f"not finished: last measured step {last} of {member['total']}"
    return True, ""


def check_emulation(member):
    """A note when the logged schedule's steps (coupling-train --print-schedule) are not the ones measured (None when
    they are)."""
    if not member["logged"]:
        return None
    try:
        wanted = schedule_steps(member["logged"], member["total"])
    except ValueError as e:
        return f"logged schedule '{member['logged']}': {e}"
    if np.array_equal(wanted, member["steps"]):
        return None
    extra, missing = np.setdiff1d(member["steps"], wanted), np.setdiff1d(wanted, member["steps"])
    return (f"the logged schedule '{member['logged']}' gives {wanted.size} steps (coupling-train --print-schedule), "
            f"the log has {member['steps'].size} (measured, not scheduled: {extra.tolist()[:8]}; scheduled, not "
            f"measured: {missing.tolist()[:8]})")


# ----------------------------------------------------------------------------------------------------------
# Output


def _fmt(value, kind):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "frac":
        return f"{value:.2f}"
    if kind == "err":
        return f"{value:.3f}"
    if kind == "val":
        return f"{value:.4f}"
    if kind == "ok":
        return "yes" if value else "no"
    return str(value)


SUMMARY_COLUMNS = (  # (key, header, kind)
    ("schedule", "schedule", "str"), ("members", "n", "str"), ("measurements", "meas", "frac1"),
    ("m_err_mean", "m_K err mean", "err"), ("m_err_max", "max", "err"), ("m_step_ok", "step<=1.5x", "frac"),
    ("lss_err_mean", "LSS err mean", "err"), ("lss_err_max", "max", "err"), ("lss_step_ok", "step<=1.5x", "frac"),
    ("overhead_mean", "overhead mean", "pct"), ("overhead_max", "max", "pct"))
MEMBER_COLUMNS = (
    ("member", "member", "str"), ("schedule", "schedule", "str"), ("measurements", "meas", "str"),
    ("m_min", "m_K min", "val"), ("m_min_step", "step", "str"), ("m_dense_min", "dense", "val"),
    ("m_dense_min_step", "step", "str"), ("m_depth", "depth", "val"), ("m_rel_err", "err", "err"),
    ("m_step_ok", "ok", "ok"),
    ("lss_min", "LSS min", "val"), ("lss_min_step", "step", "str"), ("lss_dense_min", "dense", "val"),
    ("lss_dense_min_step", "step", "str"), ("lss_depth", "depth", "val"), ("lss_rel_err", "err", "err"),
    ("lss_step_ok", "ok", "ok"), ("overhead", "overhead", "pct"))


def fixed_width(rows, columns):
    cells = [[h for _, h, _ in columns]]
    for row in rows:
        cells.append([f"{row[key]:.1f}".rstrip("0").rstrip(".") if kind == "frac1" else _fmt(row[key], kind)
                      for key, _, kind in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for n, line in enumerate(cells):
        parts = [c.ljust(w) if i == 0 or (i == 1 and columns[1][0] == "schedule") else c.rjust(w)
                 for i, (c, w) in enumerate(zip(line, widths))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_csv(rows, columns):
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([key for key, _, _ in columns])
    for row in rows:
        writer.writerow(["" if isinstance(row[key], float) and not math.isfinite(row[key]) else
                         int(row[key]) if isinstance(row[key], (bool, np.bool_)) else row[key]
                         for key, _, _ in columns])
    return out.getvalue()


def main(argv=None):
    parser = _Parser(prog="schedule_density.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="LOG_OR_STUDY_DIR")
    parser.add_argument("--k", type=int, default=None, help="K of m_K (default: the log's smallest)")
    parser.add_argument("--schedule", action="append", default=None, metavar="SPEC",
                        help="a schedule to emulate, as --measure-schedule takes it (repeatable; default: see above)")
    parser.add_argument("--members", action="store_true", help="also print one row per member and schedule")
    parser.add_argument("--csv", action="store_true", help="print CSV instead of fixed-width text")
    parser.add_argument("--train", metavar="PATH",
                        help="the coupling-train that computes the schedules (default: $COUPLING_TRAIN, else "
                             "build/bin/coupling-train of the repository)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code
    try:
        use_train(args.train)
        for text, steps in schedules_steps(args.schedule or [], 1).items():
            if isinstance(steps, ValueError):
                raise InputError(f"--schedule '{text}': {steps}")
        logs = find_logs(args.paths)
        members = [read_member(name, path, directory, args.k) for name, path, directory in logs]
    except (InputError, ToolNotFound) as e:
        print(f"schedule_density.py: {e}", file=sys.stderr)
        return 2
    try:
        return _report(args, members)
    except ToolNotFound as e:
        print(f"schedule_density.py: {e}", file=sys.stderr)
        return 2


def _report(args, members):
    used, skipped, notes, rows = [], [], [], []
    for member in members:
        done, why = finished(member)
        if not done:
            skipped.append(f"{member['name']} ({why})")
            continue
        used.append(member)
        note = check_emulation(member)
        for text in ([note] if note else []) + member["notes"]:
            notes.append(f"{member['name']}: {text}")
        schedules = args.schedule or default_schedules(member["logged"], member["steps"], member["total"])
        for row in evaluate_member(member["steps"], {"m": member["m"], "lss": member["lss"]}, member["total"],
                                   schedules, member["measure_seconds"], member["train_seconds"]):
            row["member"] = member["name"]
            rows.append(row)
        if args.schedule:
            missing = [s for s in args.schedule if s not in {r["schedule"] for r in rows if r["member"] == member["name"]}]
            notes += [f"{member['name']}: '{s}' not emulated: some of its steps were not measured" for s in missing]
    if not used:
        print("schedule_density.py: no finished member" + (f"; skipped: {'; '.join(skipped)}" if skipped else ""),
              file=sys.stderr)
        return 1
    summary = aggregate(rows, ("m", "lss"))
    if args.csv:
        text = to_csv(summary, SUMMARY_COLUMNS)
        if args.members:
            text += "\n" + to_csv(rows, MEMBER_COLUMNS)
        sys.stdout.write(text)
        for line in [f"skipped: {s}" for s in skipped] + notes:
            print(f"schedule_density.py: {line}", file=sys.stderr)
        return 0
    ks = sorted({m["k"] for m in used})
    lines = [f"{len(used)} finished member{'s' if len(used) != 1 else ''}: {', '.join(m['name'] for m in used)}; "
             f"m_K: K = {', '.join(map(str, ks))}, mean off-diagonal, ujv/norm"]
    lines += [f"skipped: {s}" for s in skipped]
    lines += [f"note: {n}" for n in notes]
    lines += ["", "dense reference (every measured step):"]
    ref = [{"member": m["name"], "T": m["total"], "meas": len(m["steps"]), "logged": m["logged"] or "-",
            "m0": m["m"][0], **{f"m_{k}": v for k, v in dip_error(m["steps"], m["m"], m["steps"]).items()},
            **{f"lss_{k}": v for k, v in dip_error(m["steps"], m["lss"], m["steps"]).items()},
            "meas_s": m["measure_seconds"], "train_s": m["train_seconds"],
            "dense_overhead": overhead_fraction(len(m["steps"]), m["measure_seconds"], m["train_seconds"]),
            "summary_overhead": m["summary_overhead"]} for m in used]
    lines.append(fixed_width(ref, (
        ("member", "member", "str"), ("logged", "schedule", "str"), ("T", "T", "str"), ("meas", "meas", "str"),
        ("m_start", "m_K@0", "val"), ("m_dense_min", "m_K min", "val"), ("m_dense_min_step", "step", "str"),
        ("lss_start", "LSS@0", "val"), ("lss_dense_min", "LSS min", "val"), ("lss_dense_min_step", "step", "str"),
        ("meas_s", "s/meas", "val"), ("train_s", "train s", "frac"), ("dense_overhead", "overhead", "pct"),
        ("summary_overhead", "summary.json", "pct"))))
    lines += ["", "per schedule (err: fraction of the dense dip depth missed; step<=1.5x: fraction of members whose "
              "minimum's step is within 1.5x of the dense one):", fixed_width(summary, SUMMARY_COLUMNS)]
    if args.members:
        lines += ["", "per member:", fixed_width(rows, MEMBER_COLUMNS)]
    try:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
