"""Checks coupling.log (open_log, tidy, arrays and the command line scripts/coupling_log.py) against h5py
reading the same log.

Usage: pytest tests/python/test_coupling_log.py     (the fixture logs: schema 1, a coupling-analyze log)
       test_coupling_log.py LOG.h5                 (one log, e.g. tests/cli/coupling_run.sh's)
LOG: a finished coupling log of any schema version (tests/cli/coupling_run.sh's $work/a/coupling.h5, the
schema-1 fixture, a coupling-analyze log). Checks:
  - open_log: every /measurement dataset as a variable with the scales' names as dimensions, the values
    read directly with h5py, its description and units (both required from schema 2 on); string
    orientation and normalisation labels (flag_meanings, else ujv/vju and norm/trace); integer k and layer;
    the groups /train, /eval, "/" and "all";
  - tidy: its columns and row count, and every value computed here from the h5py datasets (the probe
    intervals from the per-probe datasets averaged over tokens here, through coupling.intervals)
    (training loss: the last update completed at the step; held-out loss: the latest at or before it);
  - the command line: --csv reads back with pandas and equals tidy, the table prints, --check passes and
    fails on a copy with one value changed (logs with row_crc32), exit 2 with one line on stderr and
    nothing on stdout for bad input;
  - a copy held open by a SWMR writer with a torn row (the step scale one row ahead) reads, cut back to
    the complete rows; a copy with flag_meanings attributes gets their labels, and a NaN shows in tidy's means.
As a script it exits 0 when all holds (in a few seconds), 77 when this Python lacks pandas or xarray
(pytest skips then).
"""
import io
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

try:
    import pandas as pd
    import xarray  # noqa: F401
except ImportError as e:
    if __name__ != "__main__":
        import pytest
        pytest.skip(f"{sys.executable} lacks pandas or xarray ({e})", allow_module_level=True)
    print(f"test_coupling_log: skipped: {sys.executable} lacks pandas or xarray ({e}); run it with /usr/bin/python3")
    sys.exit(77)

import coupling_path  # noqa: E402,F401  (python/ on sys.path)
from coupling import log as coupling_log  # noqa: E402
from coupling.intervals import probe_intervals  # noqa: E402
from coupling.log import open_log, tidy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "coupling_log.py")  # the wrapper: the command line as users run it
FIXTURES = [os.path.join(HERE, "..", "fixtures", "schema-1-log", "run", "coupling.h5"),  # schema 1, GPT training
            os.path.join(HERE, "..", "fixtures", "hf-bf16-log", "coupling.h5"),  # coupling-analyze --hf, schema 2
            os.path.join(HERE, "..", "fixtures", "schema-3-log", "run", "coupling.h5")]  # schema 3, GPT training

DEFAULTS = {"orientation": ["ujv", "vju"], "normalisation": ["norm", "trace"]}
problems = []
notes = []


def expect(condition, message):
    if not condition:
        problems.append(message)
    return condition


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def labels(scale):
    """The labels a categorical scale's codes stand for: flag_meanings, else the defaults."""
    if "flag_meanings" in scale.attrs:
        table = dict(zip([int(v) for v in np.atleast_1d(scale.attrs["flag_values"])],
                         text(scale.attrs["flag_meanings"]).split()))
    else:
        table = dict(enumerate(DEFAULTS[scale.name.rsplit("/", 1)[-1]]))
    return [table[int(v)] for v in scale[()]]


def complete_rows(group):
    return min((d.shape[0] for d in group.values() if isinstance(d, h5py.Dataset) and d.maxshape[0] is None),
               default=0)


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return a.shape == b.shape and np.allclose(a, b, rtol=0, atol=0, equal_nan=True)
    return a.shape == b.shape and np.array_equal(a, b)


def writable_copy(log, path):
    """Copies the log to `path`; False (with a note) when the copy cannot be written: a run still writes the log."""
    shutil.copyfile(log, path)
    try:
        h5py.File(path, "r+").close()
        return True
    except OSError as e:
        if not notes:
            notes.append(e)
            print(f"test_coupling_log: note: a copy of {log} cannot be opened for writing ({e}); is a run still "
                  "writing it? The checks on changed copies are skipped")
        return False


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


# ------------------------------------------------------------------------------------------------------------


def check_open_log(log, f):
    g = f["measurement"]
    rows = complete_rows(g)
    version = int(f.attrs["schema_version"])
    ds = open_log(log)
    expect(ds.attrs.get("schema_version") == version, "open_log: root attributes missing")
    expect(same(ds["step"].values, g["step"][:rows]), f"open_log: steps {ds['step'].values} != {g['step'][:rows]}")
    for name, item in g.items():
        if h5py.h5ds.is_scale(item.id):
            if not expect(name in ds.coords, f"open_log: no coordinate {name}"):
                continue
            coord = ds[name]
            if name in DEFAULTS:
                expect(coord.dtype.kind == "U" and list(coord.values) == labels(item),
                       f"open_log: {name} labels {coord.values} != {labels(item)}")
            elif name != "step":
                expect(coord.dtype.kind == "i" and same(coord.values, item[()]),
                       f"open_log: {name} {coord.values} != {item[()]} (integers)")
            expect(coord.attrs.get("description") == text(item.attrs.get("description")),
                   f"open_log: {name} description")
            continue
        if not expect(name in ds.data_vars, f"open_log: no variable {name}"):
            continue
        var = ds[name]
        scales = tuple(item.dims[a][0].name.rsplit("/", 1)[-1] for a in range(item.ndim))
        expect(var.dims == scales, f"open_log: {name} dims {var.dims} != {scales}")
        expect(same(var.values, item[:rows]), f"open_log: {name} values differ from h5py")
        for attribute in ("description", "units"):
            if attribute in item.attrs:
                expect(var.attrs.get(attribute) == text(item.attrs[attribute]), f"open_log: {name} {attribute}")
            else:
                expect(version < 2, f"open_log: {name} has no {attribute} in a schema-{version} log")
    for name in ("k", "layer"):
        expect(name in ds.coords and ds[name].dtype.kind == "i", f"open_log: {name} is not an integer coordinate")
    for name in ("orientation", "normalisation"):
        expect(name in ds.coords and set(ds[name].values) <= set(labels(g[name])),
               f"open_log: {name} is not labelled")
    for group in ("train", "eval"):
        if group not in f:
            continue
        part = open_log(log, group=group)
        n = complete_rows(f[group])
        expect(part.sizes.get("step", 0) == n, f"open_log {group}: {dict(part.sizes)} != {n} rows")
        for name, item in f[group].items():
            if name != "step":
                expect(name in part and same(part[name].values, item[:n])
                       and part[name].attrs.get("units") == (text(item.attrs["units"]) if "units" in item.attrs
                                                             else None),
                       f"open_log {group}: {name}")
    root = open_log(log, group="/")
    if "probes" in f:
        expect("probes" in root and same(root["probes"].values, f["probes"][()]), "open_log /: probes")
        expect(root["probes"].dims[0] == "probe", f"open_log /: probes dims {root['probes'].dims}")
        if f["probes"].ndim == 2 and f["probes"].dtype.kind == "i":
            expect(root["probes"].dims == ("probe", "position"), f"open_log /: probes dims {root['probes'].dims}")
    everything = open_log(log, group="all")
    if "train" in f:
        expect("train_loss" in everything and everything["train_loss"].dims == ("train_step",),
               "open_log all: train_loss on train_step")
    if "eval" in f:
        expect("eval_val_loss" in everything and everything["eval_val_loss"].dims == ("eval_step",),
               "open_log all: eval_val_loss on eval_step")
    return rows


def expected_table(f, rows):
    """tidy's table computed here from the h5py datasets."""
    g = f["measurement"]
    steps = g["step"][:rows]
    out = {"step": steps, "tokens_seen": g["tokens_seen"][:rows]}
    train_steps = f["train/step"][:complete_rows(f["train"])] if "train" in f else np.zeros(0)
    eval_steps = f["eval/step"][:complete_rows(f["eval"])] if "eval" in f else np.zeros(0)
    train, held_out = [], []
    for s in steps:
        done = np.flatnonzero(train_steps < s)  # /train/step s' is the (s' + 1)-th update
        train.append(f["train/loss"][done[np.argmax(train_steps[done])]] if len(done) else np.nan)
        seen = np.flatnonzero(eval_steps <= s)
        held_out.append(f["eval/val_loss"][seen[np.argmax(eval_steps[seen])]] if len(seen) else np.nan)
    out["train_loss"], out["val_loss"] = np.array(train, float), np.array(held_out, float)
    for column, name in (("lss", "line_shape_score"), ("norm_growth_rate", "norm_growth_rate")):
        if name in g:  # [step, probe, token]
            out[column] = g[name][:rows].reshape(rows, -1).mean(axis=1)
            _, out[column + "_lo"], out[column + "_hi"] = probe_intervals(g[name][:rows].mean(axis=2))
    if "line_shape_score" in g:
        out["lss_random_walk"] = np.full(rows, np.sqrt(len(g["layer"])))  # a random walk of L steps
    if "layer_linearity" in g:  # schema 4 on: [step, layer]
        out["linearity"] = g["layer_linearity"][:rows].mean(axis=1)
        for i, layer in enumerate(g["layer"][()]):
            out[f"linearity_l{layer}"] = g["layer_linearity"][:rows, i]
    out["measure_seconds"] = g["measure_seconds"][:rows]
    if "peak_rss_mib" in g:  # schema 3 on
        out["peak_rss_mib"] = g["peak_rss_mib"][:rows]
    for short in ("offdiag", "adjacent"):
        name = f"depth_mean_{short}_avg"
        if name not in g:
            continue
        values = g[name][:rows]  # [step, orientation, normalisation, k]
        per_probe = g[f"depth_mean_{short}"][:rows].mean(axis=2)  # [step, probe, orientation, normalisation, k]
        null = g.get(f"depth_mean_{short}_null_avg")  # schema 4 on
        if null is not None:  # independent members under the null: sd of their mean = sqrt(sum sd^2) / count
            sd = g[f"depth_mean_{short}_null_sd"][:rows]  # [step, probe, token, orientation, normalisation, k]
            null, null_sd = null[:rows], np.sqrt((sd ** 2).sum(axis=(1, 2))) / (sd.shape[1] * sd.shape[2])
        for r, k in enumerate(g["k"][()]):
            for o, orientation in enumerate(labels(g["orientation"])):
                for n, normalisation in enumerate(labels(g["normalisation"])):
                    column = f"m_{short}_k{k}_{orientation}_{normalisation}"
                    out[column] = values[:, o, n, r]
                    _, out[column + "_lo"], out[column + "_hi"] = probe_intervals(per_probe[:, :, o, n, r])
                    if null is not None:
                        out[column + "_null"], out[column + "_null_sd"] = null[:, o, n, r], null_sd[:, o, n, r]
    return out


def check_tidy(log, f, rows):
    df = tidy(log)
    want = expected_table(f, rows)
    expect(list(df.columns) == list(want), f"tidy: columns {list(df.columns)} != {list(want)}")
    expect(len(df) == rows, f"tidy: {len(df)} rows != {rows}")
    for name, values in want.items():
        if name in df:
            expect(same(df[name].to_numpy(), values), f"tidy: {name} {df[name].to_numpy()} != {values}")
    for name in ("step", "tokens_seen"):
        expect(df[name].dtype.kind == "i", f"tidy: {name} is {df[name].dtype}")
    try:
        pd.testing.assert_frame_equal(tidy(open_log(log, group="all")), df)
    except AssertionError as e:
        problems.append(f"tidy(open_log(LOG, 'all')) != tidy(LOG): {e}")
    return df


def check_cli(log, f, df, scratch):
    r = run(log, "--csv")
    if expect(r.returncode == 0 and not r.stderr, f"--csv: exit {r.returncode}, stderr {r.stderr!r}"):
        # round-trip parsing: the default from pandas 3 on (its float_precision argument is deprecated there)
        exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
        back = pd.read_csv(io.StringIO(r.stdout), **exact)
        try:
            pd.testing.assert_frame_equal(back, df, check_exact=True)
        except AssertionError as e:
            problems.append(f"--csv does not read back as tidy: {e}")
    r = run(log)
    expect(r.returncode == 0 and not r.stderr and "measurement" in r.stdout.splitlines()[0],
           f"table: exit {r.returncode}, stderr {r.stderr!r}")
    body = r.stdout.splitlines()
    for s in df["step"]:
        expect(any(line.split()[:1] == [str(s)] for line in body), f"table: no row for step {s}")
    r = run(log, "--check")
    expect(r.returncode == 0, f"--check: exit {r.returncode} on the log: {r.stdout}{r.stderr}")
    if "row_crc32" in f["measurement"] and len(df):
        damaged = os.path.join(scratch, "damaged.h5")
        if not writable_copy(log, damaged):
            return
        with h5py.File(damaged, "r+") as w:
            w["measurement/measure_seconds"][0] += 1.0
        r = run(damaged, "--check")
        expect(r.returncode == 1 and "/measurement rows [0]" in r.stdout,
               f"--check on a changed row: exit {r.returncode}, {r.stdout!r}")
        expect(coupling_log.check(damaged) == {"measurement": [0]}, "check(): the changed row")


def check_bad_inputs(scratch):
    text_file = os.path.join(scratch, "notes.txt")
    with open(text_file, "w") as out:
        out.write("not a log\n")
    plain = os.path.join(scratch, "plain.h5")
    with h5py.File(plain, "w") as w:
        w["x"] = [1, 2, 3]
    truncated = os.path.join(scratch, "truncated.h5")
    with open(truncated, "wb") as out:
        out.write(b"\x89HDF\r\n\x1a\n" + bytes(100))
    cases = [os.path.join(scratch, "missing.h5"), text_file, plain, truncated, scratch]
    for path, mode in [(path, []) for path in cases] + [(plain, ["--csv"]), (truncated, ["--check"])]:
        r = run(path, *mode)
        expect(r.returncode == 2 and r.stdout == "" and len(r.stderr.splitlines()) == 1,
               f"bad input {os.path.basename(path)} {mode}: exit {r.returncode}, stdout {r.stdout!r}, "
               f"stderr {r.stderr!r}")
    for path in cases:
        try:
            open_log(path)
            problems.append(f"open_log({os.path.basename(path)}) did not raise")
        except coupling_log.LogError:
            pass


def check_live_torn_copy(log, rows, scratch):
    """A copy held by a SWMR writer whose step scale is one row ahead of the other datasets."""
    live = os.path.join(scratch, "live.h5")
    if not writable_copy(log, live):
        return
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, h5py\n"
        "f = h5py.File(sys.argv[1], 'r+', libver='latest')\n"
        "f.swmr_mode = True\n"
        "s = f['measurement/step']; n = s.shape[0]; s.resize((n + 1,)); s[n] = 10**9; s.flush()\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
        "f.close()\n"), live], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if not expect(writer.stdout.readline().strip() == "ready", "live copy: the SWMR writer did not start"):
            return
        ds = open_log(live)
        expect(ds.sizes.get("step") == rows and 10**9 not in ds["step"].values,
               f"live copy: {ds.sizes.get('step')} steps, want the {rows} complete rows")
        expect(len(tidy(live)) == rows, "live copy: tidy rows")
        r = run(live, "--csv")
        expect(r.returncode == 0 and len(r.stdout.splitlines()) == rows + 1, f"live copy: --csv exit {r.returncode}")
    finally:
        writer.stdin.close()
        writer.wait(timeout=60)


def check_modified_copy(log, scratch):
    """flag_values / flag_meanings name the orientation and normalisation codes when the log has them; a NaN
    (a non-finite measurement) shows in tidy's means."""
    flagged = os.path.join(scratch, "flagged.h5")
    if not writable_copy(log, flagged):
        return
    with h5py.File(flagged, "r+") as w:
        for name, meanings in (("orientation", "UJV VJU"), ("normalisation", "NORM TRACE")):
            scale = w["measurement"][name]
            scale.attrs["flag_values"] = np.arange(2, dtype=np.int64)
            scale.attrs["flag_meanings"] = meanings
        lss = w["measurement/line_shape_score"]
        lss[0] = np.where(np.arange(lss[0].size).reshape(lss[0].shape) == 0, np.nan, lss[0])
    expect(np.isnan(tidy(flagged)["lss"].iloc[0]), "tidy: a NaN line-shape score does not show in lss")
    ds = open_log(flagged)
    expect(list(ds["orientation"].values) == ["UJV", "VJU"] and list(ds["normalisation"].values) == ["NORM", "TRACE"],
           f"flag_meanings: labels {ds['orientation'].values} {ds['normalisation'].values}")
    expect("flag_values" not in ds["orientation"].attrs, "flag_meanings: flag_values kept on a string coordinate")
    k = int(ds["k"].values[0])
    expect(f"m_offdiag_k{k}_UJV_NORM" in tidy(flagged).columns, "flag_meanings: tidy column names")


def verify(log):
    """(problems, measurement rows) of every check on `log`."""
    del problems[:]
    with tempfile.TemporaryDirectory() as scratch:
        with h5py.File(log, "r", swmr=True, libver="latest") as f:
            if "step" not in f["measurement"]:  # created without a layout, before its first measurement
                rows = 0
                expect(not open_log(log).data_vars and tidy(log).empty, "a log without measurements")
                r = run(log, "--csv")
                expect(r.returncode == 0 and len(r.stdout.splitlines()) == 1, f"--csv: exit {r.returncode}")
            else:
                rows = check_open_log(log, f)
                df = check_tidy(log, f, rows)
                check_cli(log, f, df, scratch)
        check_bad_inputs(scratch)
        if rows:
            check_live_torn_copy(log, rows, scratch)
            check_modified_copy(log, scratch)
            check_arrays(log)
    return list(problems), rows


def check_arrays(log):
    """arrays(): the group's datasets and scales as numpy arrays, named as in the log, cut to complete rows."""
    with coupling_log.open_file(log) as f:
        names = {name for name, item in f["measurement"].items() if isinstance(item, h5py.Dataset)}
        rows = complete_rows(f["measurement"])
        got = coupling_log.arrays(f, "measurement")
        expect(set(got) == names, f"arrays(): names {sorted(set(got) ^ names)} differ from the log's")
        for name in names:
            ds = f["measurement"][name]
            want = ds[:rows] if ds.maxshape and ds.maxshape[0] is None else ds[()]
            if name in ("orientation", "normalisation"):
                want = labels(ds)
            expect(same(got[name], want) if name not in ("orientation", "normalisation") else list(got[name]) == want,
                   f"arrays(): {name} differs from h5py")
        some = coupling_log.arrays(f, "measurement", variables=["line_shape_score"])
        expect("line_shape_score" in some and "depth_coupling" not in some and "step" in some,
               f"arrays(variables=...): {sorted(some)}")
        skipped = coupling_log.arrays(f, "measurement", skip=["depth_coupling"])
        expect("depth_coupling" not in skipped and set(skipped) == names - {"depth_coupling"}, "arrays(skip=...)")


def test_fixture_logs():
    for log in FIXTURES:
        found, rows = verify(log)
        assert rows > 0, f"{log}: no measurements"
        assert not found, f"{log}: " + "; ".join(map(str, found))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    log = sys.argv[1]
    found, rows = verify(log)
    for p in found:
        print("test_coupling_log:", p)
    print(f"test_coupling_log: {log}: {rows} measurements, {'ok' if not found else 'FAILED'}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
