"""Checks coupling.schedule_density (scripts/schedule_density.py) on a synthetic coupling dip whose answers are
worked out by hand.

Usage: pytest tests/python/test_schedule_density.py     (numpy, h5py, pandas and xarray; coupling-train for
       the schedules: $COUPLING_TRAIN, else build/bin/coupling-train, see conftest.py)
  - the schedules, asked of coupling-train --print-schedule: log:8 over 1200 steps = the steps docs/study.md
    lists (0, 1, 3, 8, 21, 57, 158, 436, 1200), "log:64 every:100" over 1500 steps = the 68 steps of the atlas
    (ATLAS_STEPS); a bad schedule is a ValueError carrying coupling-train's one line;
  - the dip on arrays (no coupling-train): a dense curve v(s) = 1 - 0.5 exp(-(ln(s/40) / 0.5)^2 / 2) (v(0) = 1,
    minimum at step 40) measured at the atlas's steps has its dense minimum at step 41; log:8 (steps 23 and 65
    around it) finds v(65), misses (v(65) - v(41)) / (1 - v(41)) = 0.375 of the dip, and its step 65 is more
    than 1.5x 41; log:22 finds step 46 (within 1.5x) and misses less; the overhead is measurements x seconds
    per measurement / training seconds;
  - the command line on a synthetic study (an HDF5 log as coupling-train writes it, read through
    coupling.log): its default schedules are the log:N that are subsets of the atlas's steps, exactly N in
    {2, 4, 8, 10, 22, 64} (each alone and with every:100), every:100 and the atlas's own; a finished member
    gives the numbers above in --csv, a member still training is skipped,
    bad input exits 2 with one line on stderr and nothing on stdout, no finished member exits 1, and
    a missing coupling-train exits 2 with one line.
"""
import csv
import io
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("xarray")

import coupling_path  # noqa: E402,F401  (python/ on sys.path)
from coupling.schedule_density import (dip_error, evaluate_member, overhead_fraction, schedule_steps,  # noqa: E402
                                       schedules_steps, step_within, use_train)

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "schedule_density.py")

ATLAS = "log:64 every:100"
T = 1500
# What coupling-train --print-schedule gives for the atlas's schedule over T steps (docs/study.md: 68 steps), for
# log:8 and for log:22 over T; the array tests use them without coupling-train, test_schedules checks them against it.
ATLAS_STEPS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 16, 18, 20, 23, 26, 29, 33, 37, 41, 46, 52, 58, 65, 73,
               82, 93, 100, 104, 117, 131, 147, 165, 186, 200, 208, 234, 263, 295, 300, 332, 372, 400, 418, 470, 500,
               528, 593, 600, 666, 700, 747, 800, 839, 900, 943, 1000, 1059, 1100, 1189, 1200, 1300, 1336, 1400, 1500]
LOG8_STEPS = [0, 1, 3, 8, 23, 65, 186, 528, 1500]
LOG22_STEPS = [0, 1, 2, 3, 4, 6, 8, 11, 16, 23, 33, 46, 65, 93, 131, 186, 263, 372, 528, 747, 1059, 1500]


def close(a, b, tol=1e-12):
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tol


def dip_curve(steps, centre=40.0, depth=0.5, width=0.5):
    """1 at step 0, a log-Gaussian dip to 1 - depth at `centre`."""
    s = np.asarray(steps, dtype=float)
    out = np.ones_like(s)
    pos = s > 0
    out[pos] = 1 - depth * np.exp(-0.5 * (np.log(s[pos] / centre) / width) ** 2)
    return out


def test_schedules(coupling_train):
    use_train(coupling_train)
    assert schedule_steps("log:8", 1200).tolist() == [0, 1, 3, 8, 21, 57, 158, 436, 1200], "log:8 over 1200"
    assert schedule_steps("log:8", T).tolist() == LOG8_STEPS
    assert schedule_steps("log:22", T).tolist() == LOG22_STEPS
    assert schedule_steps("log:1", T).tolist() == [0, T] and schedule_steps("log:0", T).tolist() == [0, T]
    assert schedule_steps("log:5", 1).tolist() == [0, 1], "one step"
    dense = schedule_steps(ATLAS, T)
    assert dense.tolist() == ATLAS_STEPS, f"{ATLAS} over {T}: {dense.size} steps, docs/study.md says 68"
    assert set(range(0, T + 1, 100)) <= set(dense.tolist()), "every:100 steps in the atlas schedule"
    # which log:N are subsets of it: test_command_line's default schedules (63 coupling-train runs, asked once)
    each = schedules_steps(["log:4", "log:9", "log:10"], T)  # several at once
    assert [np.isin(each[t], dense).all() for t in ("log:4", "log:9", "log:10")] == [True, False, True]
    assert schedule_steps("every:100 steps:7,3000", T).tolist() == [0, 7] + list(range(100, T + 1, 100)), \
        "every and steps (steps past T dropped)"
    assert schedule_steps("every:7", 20).tolist() == [0, 7, 14, 20], "step 0 and the final step always measured"
    for bad in ("log:x", "every:-1", "bogus", "log"):
        with pytest.raises(ValueError) as raised:
            schedule_steps(bad, T)
        assert str(raised.value) and "\n" not in str(raised.value), f"schedule '{bad}': {raised.value!r}"


def test_evaluate_member(coupling_train):
    use_train(coupling_train)
    dense = np.array(ATLAS_STEPS)
    values = dip_curve(dense)
    rows = evaluate_member(dense, {"m": values}, T, ["log:8", "log:9", ATLAS], 0.5, 600.0)
    assert [row["schedule"] for row in rows] == ["log:8", ATLAS], "log:9 (not a subset) left out"
    assert rows[0]["measurements"] == 9 and close(rows[0]["overhead"], 9 * 0.5 / 600), f"log:8 cost {rows[0]}"


def test_dip():
    dense = np.array(ATLAS_STEPS)
    values = dip_curve(dense)
    v41, v65, v46 = (float(dip_curve([s])[0]) for s in (41, 65, 46))
    want8 = (v65 - v41) / (1 - v41)
    assert abs(want8 - 0.375) < 1e-3, f"hand value of log:8's error {want8} (worked: 0.18729 / 0.49939 = 0.375)"

    r = dip_error(dense, values, LOG8_STEPS)
    assert r["dense_min_step"] == 41 and close(r["dense_min"], v41), f"dense minimum {r['dense_min']} at {r['dense_min_step']}"
    assert r["min_step"] == 65 and close(r["min"], v65), f"log:8 minimum {r['min']} at {r['min_step']}, want v(65)"
    assert close(r["depth"], 1 - v41), f"depth {r['depth']}"
    assert close(r["rel_err"], want8), f"log:8 relative error {r['rel_err']}, want {want8}"
    assert r["step_ok"] is False, "log:8's step 65 is more than 1.5x the dense 41"

    r22 = dip_error(dense, values, LOG22_STEPS)
    assert r22["min_step"] == 46 and close(r22["rel_err"], (v46 - v41) / (1 - v41)), f"log:22: {r22}"
    assert r22["step_ok"] is True and r22["rel_err"] < r["rel_err"], "log:22 resolves the dip better than log:8"

    same = dip_error(dense, values, dense)
    assert same["rel_err"] == 0 and same["step_ok"] is True, "the dense schedule against itself"
    flat = dip_error([0, 1, 2], [1.0, 1.0, 1.0], [0, 2])
    assert flat["rel_err"] == 0 and flat["min_step"] == 0, "no dip: nothing missed"
    nan = dip_error([0, 10, 20, 30], [1.0, np.nan, 0.2, 0.6], [0, 10, 30])
    assert nan["min_step"] == 30 and close(nan["rel_err"], 0.5), f"a NaN value is skipped: {nan}"
    with pytest.raises(ValueError):
        dip_error([0, 10], [1.0, 0.5], [0, 5])
    assert [step_within(a, b) for a, b in ((60, 40), (61, 40), (27, 40), (26, 40), (0, 0), (0, 3))] \
        == [True, False, True, False, True, False], "step_within's factor 1.5 bounds"
    assert close(overhead_fraction(8, 0.5, 400.0), 0.01), "overhead 8 x 0.5 s / 400 s"


# ------------------------------------------------------------------------------------------------------------
# A synthetic log and study


def write_log(path, steps, m10, lss, measure_seconds, train_seconds):
    """A minimal schema-2 coupling log with the /measurement datasets coupling_log.tidy reads."""
    n = len(steps)
    with h5py.File(path, "w", libver="latest") as f:
        f.attrs["schema_version"] = 2
        f.attrs["model"] = "gpt"
        g = f.create_group("measurement")
        step = g.create_dataset("step", data=np.asarray(steps, np.int64), maxshape=(None,))
        step.make_scale("step")
        scales = {"k": np.array([10, 30], np.int64), "orientation": np.array([0, 1], np.int64),
                  "normalisation": np.array([0, 1], np.int64)}
        for name, values in scales.items():
            g.create_dataset(name, data=values).make_scale(name)
        avg = np.full((n, 2, 2, 2), 0.9)
        avg[:, 0, 0, 0] = m10
        avg[:, 1, 0, 0] = 0.95
        data = {"depth_mean_offdiag_avg": avg, "line_shape_score": np.repeat(np.asarray(lss)[:, None, None], 2, 1),
                "measure_seconds": np.full(n, measure_seconds), "train_seconds": np.asarray(train_seconds, float),
                "scheduled_step": np.asarray(steps, np.int64), "tokens_seen": np.asarray(steps, np.int64) * 64}
        for name, values in data.items():
            ds = g.create_dataset(name, data=values, maxshape=(None,) + values.shape[1:])
            ds.dims[0].attach_scale(step)
            if name == "depth_mean_offdiag_avg":
                for axis, scale in enumerate(("k", "orientation", "normalisation"), start=1):
                    ds.dims[axis].attach_scale(g[scale])


def make_member(root, name, steps, total):
    os.makedirs(os.path.join(root, name))
    with open(os.path.join(root, name, "config.toml"), "w") as f:
        f.write(f"steps = {total}\nmeasure-schedule = '{ATLAS}'\nlayers = 2\n")
    steps = np.asarray(steps)
    train = np.full(len(steps), 600.0 / (len(steps) - 1))
    train[0] = 0.0
    write_log(os.path.join(root, name, "coupling.h5"), steps, dip_curve(steps),
              dip_curve(steps, centre=300.0, depth=1.0, width=1.0) + 1.0, 0.5, train)


def run(*args, train=None):
    """scripts/schedule_density.py ARGS (the wrapper, as users run it) with COUPLING_TRAIN=train."""
    env = dict(os.environ)
    env.pop("COUPLING_TRAIN", None)
    if train:
        env["COUPLING_TRAIN"] = train
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, env=env, timeout=600)


def test_command_line(coupling_train):
    problems = []

    def expect(condition, message):
        if not condition:
            problems.append(message)
        return condition

    _command_line(expect, lambda *args: run(*args, train=coupling_train))
    assert not problems, "; ".join(problems)


def test_without_coupling_train():
    """No coupling-train where it is looked for: exit 2 with one line naming it."""
    with tempfile.TemporaryDirectory() as tmp:
        make_member(tmp, "a_done", np.array(ATLAS_STEPS), T)
        p = run(os.path.join(tmp, "a_done"), "--train", os.path.join(tmp, "no-such-coupling-train"))
        assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, p
        assert "coupling-train not found" in p.stderr, p.stderr
        p = run(os.path.join(tmp, "a_done"), train=os.path.join(tmp, "missing"))
        assert p.returncode == 2 and "COUPLING_TRAIN" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p


def _command_line(expect, run):
    dense = np.array(ATLAS_STEPS)
    with tempfile.TemporaryDirectory() as tmp:
        study = os.path.join(tmp, "study")
        make_member(study, "a_done", dense, T)
        make_member(study, "b_running", dense[dense <= 400], T)
        p = run(study, "--csv", "--members")
        if not expect(p.returncode == 0, f"CLI on the synthetic study: rc {p.returncode}, {p.stderr.strip()}"):
            return
        expect("b_running" in p.stderr and "not finished" in p.stderr, f"the running member not reported: {p.stderr!r}")
        expect("a_done" not in p.stderr, f"the finished member has notes (emulation mismatch?): {p.stderr!r}")
        summary_text, member_text = p.stdout.split("\n\n")
        summary = {row["schedule"]: row for row in csv.DictReader(io.StringIO(summary_text))}
        members = list(csv.DictReader(io.StringIO(member_text)))
        expect({r["member"] for r in members} == {"a_done"}, "only the finished member's rows")
        want = ["log:2", "log:2 every:100", "log:4", "log:4 every:100", "log:8", "log:8 every:100", "log:10",
                "log:10 every:100", "log:22", "log:22 every:100", "log:64", "log:64 every:100", "every:100"]
        expect(list(summary) == want, f"schedules {list(summary)}")
        v41, v65 = (float(dip_curve([s])[0]) for s in (41, 65))
        row = summary.get("log:8", {})
        expect(row.get("members") == "1" and float(row.get("measurements", "nan")) == 9, f"log:8 row {row}")
        expect(close(float(row.get("m_err_mean", "nan")), (v65 - v41) / (1 - v41), 1e-9), f"log:8 m_K error {row}")
        expect(float(row.get("m_step_ok", "nan")) == 0, "log:8 step within 1.5x")
        expect(close(float(row.get("overhead_mean", "nan")), 9 * 0.5 / 600, 1e-9), f"log:8 overhead {row}")
        row = summary.get(ATLAS, {})
        expect(float(row.get("m_err_max", "nan")) == 0 and close(float(row.get("overhead_mean", "nan")), 68 * 0.5 / 600),
               f"the dense schedule's own row {row}")
        # LSS: a dip from 2 to 1 at step 300, which every:100 measures exactly
        expect(float(summary.get("every:100", {}).get("lss_err_max", "nan")) == 0, "every:100 finds LSS's minimum")
        expect(float(summary.get("every:100", {}).get("m_step_ok", "nan")) == 0, "every:100 misses the early dip")

        p = run(study, "--schedule", "log:8", "--schedule", "log:9")
        expect(p.returncode == 0 and "log:9" in p.stdout.split("per schedule")[0] and "not emulated" in p.stdout,
               f"an unmeasurable --schedule noted: {p.stdout!r}")
        p = run(os.path.join(study, "a_done"), "--schedule", "log:8")  # one schedule: each asks coupling-train
        expect(p.returncode == 0 and "per schedule" in p.stdout, "a run directory as argument")

        only_running = os.path.join(tmp, "running")
        make_member(only_running, "b", dense[dense <= 400], T)
        p = run(only_running)
        expect(p.returncode == 1 and p.stdout == "" and "not finished" in p.stderr, f"no finished member: {p}")

        not_hdf5 = os.path.join(tmp, "x.h5")
        with open(not_hdf5, "w") as f:
            f.write("not HDF5\n")
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        for args in ([os.path.join(tmp, "missing")], [not_hdf5], [empty], [study, "--k", "7"],
                     [study, "--schedule", "log:x"], [], [study, "--k", "x"]):
            p = run(*args)
            expect(p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1,
                   f"bad input {args}: rc {p.returncode}, stdout {p.stdout!r}, stderr {p.stderr!r}")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
