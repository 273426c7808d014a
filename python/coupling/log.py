"""Reading a libcoupling HDF5 log (docs/hdf5-schema.md) from Python: labelled data, a per-step table, row checks.

Usage: coupling-log LOG.h5            the per-step table below, fixed width
       coupling-log LOG.h5 --csv      the same table as CSV (pandas.read_csv reads it back)
       coupling-log LOG.h5 --check    every row against its row_crc32: exit 1 when one differs
       coupling-log LOG.h5 --differ A B [--column COLUMN]
                                      do steps A and B differ? The column's value at both, and the paired
                                      95% interval of the change B - A over probes (coupling.intervals)
(scripts/coupling_log.py is the same command for Pythons without the package installed.)
LOG may also be a run directory holding coupling.h5. Bad input (no such file, not HDF5, not a coupling
log) exits 2 with one line on stderr and nothing on stdout.

From Python (the package `coupling`, python/ in the repository):
  from coupling.log import open_log, tidy, differ
  ds = open_log("runs/demo/coupling.h5")      # xarray.Dataset of /measurement, data loaded, file closed
  ds.depth_mean_offdiag_avg.sel(k=10, orientation="ujv", normalisation="norm")
  df = tidy("runs/demo/coupling.h5")          # pandas.DataFrame, one row per measured step
  differ("runs/demo/coupling.h5", 0, 1000)    # do steps 0 and 1000 differ in m_10 (ujv/norm)?

open_log(path, group="measurement", variables=None)
  group: "measurement", "train", "eval", "/" (the root: /probes, /context_pairs) or "all" (every group
  in one Dataset: /train's variables are named train_NAME on the dimension train_step, /eval's
  eval_NAME on eval_step). variables: names to load (default all; names the log lacks are skipped).
  Coordinates are the groups' HDF5 dimension scales. The categorical scales (orientation,
  normalisation, pair_token) become string labels, from their CF flag_meanings attribute when the log
  has it, else ujv/vju, norm/trace and input/output. Every variable keeps its description and units
  attributes; the Dataset's attributes are the file's root attributes (schema_version, model, ...) and
  the group's. Opened in SWMR mode, so a log that a run is still writing reads too: every group is cut
  to the rows that all its datasets hold (a writer flushes one dataset after another).
  Raises LogError (an OSError) for a missing file, a non-HDF5 file or a file that is no coupling log.

tidy(path_or_dataset) -> pandas.DataFrame, one row per measured step, in this column order:
  step                     updates completed at the measurement
  tokens_seen              training items (tokens or images) seen at the measurement
  train_loss               loss of the last training update completed at the measurement: the /train row
                           with the largest step < step (/train/step numbers updates from 0); NaN without one
                           (coupling-analyze logs have no training rows)
  val_loss                 the latest held-out loss at or before the step (/eval step <= step); NaN without one
  lss                      line-shape score (1 = straight trajectory), mean over probes and tokens
  norm_growth_rate         slope of log||x^l|| against l (nats/block), mean over probes and tokens
  measure_seconds          wall time of the measurement (s)
  peak_rss_mib             peak resident memory during the measurement (MiB; schema 3 on, else absent)
  m_offdiag_kK_O_N         depth coupling m_K averaged over probes, tokens and the block pairs
                           layer != basis_layer (depth_mean_offdiag_avg), for K, orientation O (ujv, vju)
                           and normalisation N (norm, trace); lower = more coupled
  m_adjacent_kK_O_N        the same over adjacent blocks |layer - basis_layer| = 1 (depth_mean_adjacent_avg)
  COLUMN_lo, COLUMN_hi     after each of lss, norm_growth_rate and the m_K columns: the 95% interval of that
                           probe mean, a bootstrap over probes paired across steps (coupling.intervals; the
                           same numbers as coupling-analyze's summary); NaN with one probe
  COLUMN_null, COLUMN_null_sd  after each m_K column (schema 4 on): the value that mean would have if every
                           basis were unrelated to the Jacobian it is compared with (Haar-random; docs/metrics.md
                           section 3.1), and its standard deviation under that null (the member nulls' sds
                           pooled as independent: sqrt(sum sd^2) / count). Below null - 2 sd is coupled, near
                           the null uncoupled, above null + 2 sd anti-aligned
  lss_random_walk          sqrt(L): the line-shape score of a random walk of L isotropic steps, LSS's reference
                           (divide by it to compare depths)
  linearity                layer linearity (Razzhigaev et al.) averaged over the blocks, and linearity_lL per
                           block l: 1 = the block's map of the residual states is affine over the probe tokens
                           (schema 4 on; NaN when the probes have fewer than d + 1 tokens)
  Means do not skip NaN: a measurement with non-finite values shows NaN. Logs without a field lack
  its columns. tidy(path) reads only these datasets; tidy(open_log(path, "all")) gives the same
  table, tidy(open_log(path)) the same with train_loss and val_loss NaN.

Row checks: every row of /measurement, /train and /eval carries `row_crc32`, the CRC-32 of "NAME:CRC;"
over the group's other row datasets in name order, CRC being zlib.crc32 of that dataset's row as
stored (docs/hdf5-schema.md). damaged_rows(group) recomputes it for an h5py group, check(path) for a
whole log; logs written before the column have none.

Without xarray: open_file(path) is the log as an h5py.File (checked, SWMR, read-only) and
arrays(file, group) the group's datasets and dimension scales as numpy arrays, cut to complete rows
like open_log (categorical scales as their labels). Every plot and study of this package reads logs
through open_log, tidy or these two; the field names always come from the log itself.
"""
import argparse
import os
import shutil
import sys
import zlib

import h5py
import numpy as np

from coupling.intervals import LEVEL, difference, probe_intervals

ROW_CHECKSUM = "row_crc32"
GROUPS = ("measurement", "train", "eval")
# Labels of the categorical dimension scales for logs written before their flag_meanings attribute.
DEFAULT_LABELS = {"orientation": ("ujv", "vju"), "normalisation": ("norm", "trace"), "pair_token": ("input", "output")}
# Axis names of the root datasets in logs written before they had dimension scales (as the writer names them now).
ROOT_AXES = ("probe", "position", "channel", "row", "column", "context_pair", "pair_token")
# HDF5 bookkeeping attributes, not carried over to xarray.
HIDDEN_ATTRIBUTES = {"CLASS", "NAME", "REFERENCE_LIST", "DIMENSION_LIST", "_Netcdf4Dimid", "_Netcdf4Coordinates",
                     "_NCProperties"}
KNOWN_SCHEMA = 4
WHAT_TO_PASS = "pass the coupling.h5 that coupling-train or coupling-analyze wrote (OUT/coupling.h5 by default)"


class LogError(OSError):
    """The path is not a readable coupling log; the message says what is wrong and what to do. An OSError, like
    h5py's own errors, so that callers catching those (coupling.plot) catch it too."""


# ----------------------------------------------------------------------------------------------------------
# Row checks


def _row_datasets(group):
    """Names of the group's datasets that have one row per step (dimension scales excluded)."""
    return sorted(name for name, item in group.items()
                  if isinstance(item, h5py.Dataset) and name != ROW_CHECKSUM and item.maxshape
                  and item.maxshape[0] is None)


def damaged_rows(group):
    """Indices of the rows of `group` whose values do not match their row_crc32 ([] without the column)."""
    if ROW_CHECKSUM not in group:
        return []
    names = _row_datasets(group)
    rows = min(group[name].shape[0] for name in names + [ROW_CHECKSUM])  # a torn last row is incomplete
    values = {}
    for name in names:
        data = group[name][:rows]
        values[name] = data.astype("<i8" if data.dtype.kind in "iu" else "<f8", copy=False)
    stored = group[ROW_CHECKSUM][:rows]
    damaged = []
    for row in range(rows):
        crc = 0
        for name in names:
            part = zlib.crc32(np.ascontiguousarray(values[name][row]).tobytes())
            crc = zlib.crc32(f"{name}:{part};".encode(), crc)
        if crc != int(stored[row]):
            damaged.append(row)
    return damaged


def check(path):
    """{group: damaged row indices} for every group of the log that has damaged rows."""
    with _open(path) as f:
        return {name: rows for name in GROUPS if name in f
                for rows in [damaged_rows(f[name])] if rows}


# ----------------------------------------------------------------------------------------------------------
# Opening


def _resolve(path):
    """The log's path: `path`, or `path`/coupling.h5 for a run directory. Raises LogError."""
    path = os.fspath(path)
    if os.path.isdir(path):
        inner = os.path.join(path, "coupling.h5")
        if os.path.isfile(inner):
            return inner
        raise LogError(f"{path} is a directory without coupling.h5; {WHAT_TO_PASS}")
    if not os.path.exists(path):
        raise LogError(f"{path}: no such file; {WHAT_TO_PASS}")
    if not os.access(path, os.R_OK):
        raise LogError(f"{path}: not readable (permissions); read it as its owner or copy it")
    return path


def _open(path):
    """The log opened read-only in SWMR mode (works while a run writes it). Raises LogError."""
    path = _resolve(path)
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as e:
        raise LogError(f"{path}: cannot read it ({e}); {WHAT_TO_PASS}") from None
    if not is_hdf5:
        raise LogError(f"{path} is not an HDF5 file; {WHAT_TO_PASS}")
    try:
        f = h5py.File(path, "r", swmr=True, libver="latest")
    except (OSError, RuntimeError, ValueError) as e:
        if "already open for write" in str(e) or "SWMR" in str(e):
            raise LogError(f"{path}: HDF5 refuses to open it ({e}): a writer that is not in SWMR mode holds it or "
                           "died; once no run writes it, resume the run (--resume repairs it) or run "
                           f"'h5clear -s {path}'") from None
        raise LogError(f"{path}: HDF5 cannot open it ({e}); the file is damaged or truncated") from None
    if "schema_version" not in f.attrs or not isinstance(f.get("measurement"), h5py.Group):
        what = "no schema_version attribute" if "schema_version" not in f.attrs else "no /measurement group"
        f.close()
        raise LogError(f"{path} is an HDF5 file but not a coupling log ({what}); {WHAT_TO_PASS}")
    return f


def open_file(path):
    """The log (a coupling.h5 or a run directory holding one) as an h5py.File opened read-only in SWMR mode, after
    checking that it is a coupling log; close it (or use it in a with statement). Raises LogError."""
    return _open(path)


def arrays(f, group="measurement", variables=None, skip=()):
    """{name: numpy array} of one group of a log opened by open_file: its datasets and dimension scales (categorical
    scales as their string labels), row datasets cut to the rows that all of them hold. `variables`: the names to
    read (default all; with it, only the scales they use); `skip`: names not to read (large per-step matrices).
    The names are the log's own. Raises LogError for a group the log lacks."""
    if group not in f:
        raise LogError(f"{f.filename} has no /{group.strip('/')} group (a log written without it); read another group")
    if skip:
        names = variables if variables is not None else [
            name for name, item in f[group].items() if isinstance(item, h5py.Dataset)]
        variables = [name for name in names if name not in skip]
    coords, data_vars = _read_group(f, group, None if variables is None else set(variables))
    out = {name: values for name, (_, values, _) in data_vars.items()}
    out.update({name: spec[1] for name, spec in coords.items()})
    return out


def attributes(obj):
    """The HDF5 attributes of a file, group or dataset as plain Python and numpy values (bookkeeping left out)."""
    return _attributes(obj)


def plain(value):
    """An HDF5 value as a Python or numpy value: bytes decoded, string arrays as object arrays of str."""
    return _plain(value)


def _plain(value):
    """An HDF5 attribute value as a Python or numpy value (bytes decoded)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return np.array([_plain(v) for v in value.ravel()], dtype=object).reshape(value.shape)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _attributes(obj):
    attrs = {}
    for key in obj.attrs:
        if key in HIDDEN_ATTRIBUTES:
            continue
        try:
            attrs[key] = _plain(obj.attrs[key])
        except (OSError, TypeError, ValueError):  # a type h5py cannot read: left out
            continue
    return attrs


def _basename(name):
    return name.rsplit("/", 1)[-1]


def _axes(ds, fallback):
    """Dimension names of `ds`: its attached scales' names, else `fallback`, else NAME_axisI."""
    if h5py.h5ds.is_scale(ds.id):
        return (_basename(ds.name),)
    names = []
    for axis in range(ds.ndim):
        if len(ds.dims[axis]):
            names.append(_basename(ds.dims[axis][0].name))
        elif fallback:
            names.append(fallback[axis])
        else:
            names.append(f"{_basename(ds.name)}_axis{axis}")
    return tuple(names)


def _root_axes(name, ds):
    """Axis names of /probes and /context_pairs for logs written before they had dimension scales."""
    if name == "context_pairs" and ds.ndim == 2:
        return ("context_pair", "pair_token")
    if name != "probes" or ds.ndim < 1:
        return None
    if ds.ndim == 2 and ds.dtype.kind in "iu":
        return ("probe", "position")  # token ids
    if ds.ndim == 4:
        return ("probe", "channel", "row", "column")  # images
    return ("probe",) + tuple(f"input_axis_{axis}" for axis in range(1, ds.ndim))


def _labels(name, values, attrs):
    """String labels for a categorical scale (flag_meanings, else DEFAULT_LABELS), or None."""
    meanings, codes = attrs.get("flag_meanings"), attrs.get("flag_values")
    if meanings is not None and codes is not None:
        table = dict(zip((int(c) for c in np.atleast_1d(codes)), str(meanings).split()))
    elif name in DEFAULT_LABELS and values.dtype.kind in "iu":
        table = dict(enumerate(DEFAULT_LABELS[name]))
    else:
        return None
    return np.array([table.get(int(v), str(int(v))) for v in values])


def _coordinate(name, values, attrs):
    labels = _labels(name, values, attrs)
    if labels is None:
        return values, attrs
    kept = {k: v for k, v in attrs.items() if k not in ("flag_values", "flag_meanings")}
    return labels, kept


def _read_group(f, group, variables, prefix="", step_dim=None):
    """(coords, data_vars) of one HDF5 group as xarray (dims, values, attrs) tuples."""
    g = f[group]
    datasets = {name: item for name, item in g.items() if isinstance(item, h5py.Dataset)}
    root = g.name == "/"
    unlimited = {name for name, ds in datasets.items() if ds.maxshape and ds.maxshape[0] is None}
    rows = min((datasets[name].shape[0] for name in unlimited), default=0)  # complete rows only (see the module doc)
    rename = {"step": step_dim} if step_dim else {}
    coords, data_vars, needed = {}, {}, set()
    for name, ds in datasets.items():
        if h5py.h5ds.is_scale(ds.id):
            continue
        out = prefix + name
        if variables is not None and out not in variables:
            continue
        fallback = _root_axes(name, ds) if root else None
        dims = tuple(rename.get(d, d) for d in _axes(ds, fallback))
        values = ds[:rows] if name in unlimited else ds[()]
        data_vars[out] = (dims, values, _attributes(ds))
        needed.update(dims)
    for name, ds in datasets.items():
        dim = rename.get(name, name)
        if not h5py.h5ds.is_scale(ds.id) or (variables is not None and dim not in needed and name not in variables):
            continue
        values = ds[:rows] if name in unlimited else ds[()]
        coords[dim] = (dim,) + _coordinate(name, values, _attributes(ds))
    if root:  # integer coordinates for the axes of old logs' root datasets, which had no scales
        for dims, values, _ in list(data_vars.values()):
            for axis, dim in enumerate(dims):
                if dim not in coords and (dim in ROOT_AXES or dim.startswith("input_axis_")):
                    index = np.arange(values.shape[axis], dtype=np.int64)
                    coords[dim] = (dim,) + _coordinate(dim, index, {})
    if variables is not None and "step" in variables and step_dim is None and "step" in datasets:
        ds = datasets["step"]
        coords.setdefault("step", ("step",) + _coordinate("step", ds[:rows], _attributes(ds)))
    return coords, data_vars


def _dataset(f, group, variables, prefix="", step_dim=None):
    import xarray as xr

    coords, data_vars = _read_group(f, group, variables, prefix, step_dim)
    attrs = _attributes(f)
    if group != "/":
        attrs.update(_attributes(f[group]))
    return xr.Dataset(data_vars=data_vars, coords=coords, attrs=attrs)


def open_log(path, group="measurement", variables=None):
    """An xarray.Dataset of one group of a coupling log (see the module doc); the file is closed on return."""
    if group not in GROUPS + ("/", "all"):
        raise ValueError(f"group {group!r}: use one of {', '.join(GROUPS + ('/', 'all'))}")
    wanted = None if variables is None else set(variables)
    with _open(path) as f:
        version = f.attrs["schema_version"]
        if int(version) > KNOWN_SCHEMA:
            print(f"coupling_log: {f.filename} has schema_version {version}, newer than this reader knows "
                  f"({KNOWN_SCHEMA}); reading it as version {KNOWN_SCHEMA}", file=sys.stderr)
        if group not in ("/", "all") and group not in f:
            raise LogError(f"{f.filename} has no /{group} group (a log written without it); read another group")
        try:
            ds = _open_group(f, group, wanted)
        except (OSError, RuntimeError) as e:  # a dataset HDF5 cannot read
            raise LogError(f"{f.filename}: HDF5 cannot read /{group.strip('/')} ({e}); the file is damaged") from None
        ds.encoding["source"] = os.path.abspath(f.filename)
        ds.encoding["group"] = group
    return ds


def _open_group(f, group, wanted):
    import xarray as xr

    if group != "all":
        return _dataset(f, group, wanted)
    parts = [_dataset(f, "measurement", wanted)]
    for name in ("train", "eval"):
        if name in f:
            parts.append(_dataset(f, name, wanted, prefix=name + "_", step_dim=name + "_step"))
    parts.append(_dataset(f, "/", wanted))
    ds = xr.merge(parts, combine_attrs="override")
    ds.attrs = parts[0].attrs
    return ds


# ----------------------------------------------------------------------------------------------------------
# The per-step table

SUMMARIES = (("offdiag", "depth_mean_offdiag_avg"), ("adjacent", "depth_mean_adjacent_avg"))
TIDY_VARIABLES = ("step", "tokens_seen", "measure_seconds", "peak_rss_mib", "line_shape_score", "norm_growth_rate",
                  "depth_mean_offdiag_avg", "depth_mean_adjacent_avg", "depth_mean_offdiag", "depth_mean_adjacent",
                  "depth_mean_offdiag_null_avg", "depth_mean_adjacent_null_avg", "depth_mean_offdiag_null_sd",
                  "depth_mean_adjacent_null_sd", "layer_linearity", "step_lengths", "train_loss", "eval_val_loss")
NULL_SUFFIXES = ("_null", "_null_sd")
INTERVAL_SUFFIXES = ("_lo", "_hi")


def _latest(steps, at, values, before):
    """values at the largest of `at` that is < (before=True) or <= each of `steps`; NaN without one."""
    out = np.full(len(steps), np.nan)
    if len(at) == 0:
        return out
    order = np.argsort(at, kind="stable")
    at, values = np.asarray(at)[order], np.asarray(values, dtype=float)[order]
    index = np.searchsorted(at, steps, side="left" if before else "right") - 1
    found = index >= 0
    out[found] = values[index[found]]
    return out


def tidy(log):
    """pandas.DataFrame, one row per measured step (columns in the module doc); `log`: a path or an open_log Dataset."""
    import xarray as xr

    ds = log if isinstance(log, xr.Dataset) else open_log(log, group="all", variables=TIDY_VARIABLES)
    return _tidy(ds)[0]


def _per_probe(var, keep=()):
    """`var` averaged over every dimension but step, probe and `keep` (NaN not skipped), as numpy with the probe
    axis last; None when it has no probe axis."""
    if "probe" not in var.dims:
        return None
    kept = ("step",) + tuple(keep) + ("probe",)
    return var.mean(dim=[d for d in var.dims if d not in kept], skipna=False).transpose(*kept).values


def _with_interval(columns, column, values, per_probe):
    columns[column] = values
    if per_probe is not None:
        _, columns[column + "_lo"], columns[column + "_hi"] = probe_intervals(per_probe)


def _tidy(ds):
    """(tidy's DataFrame, {m_K column: (summary, kK, orientation, normalisation)}, {column: [step, probe] values})
    of an open_log Dataset."""
    import pandas as pd

    steps = ds["step"].values.astype(np.int64) if "step" in ds.coords else np.zeros(0, np.int64)
    nan = np.full(len(steps), np.nan)
    columns = {"step": steps}
    probes = {}
    columns["tokens_seen"] = ds["tokens_seen"].values if "tokens_seen" in ds else nan
    columns["train_loss"] = (_latest(steps, ds["train_step"].values, ds["train_loss"].values, before=True)
                             if "train_loss" in ds else nan)
    columns["val_loss"] = (_latest(steps, ds["eval_step"].values, ds["eval_val_loss"].values, before=False)
                           if "eval_val_loss" in ds else nan)
    for column, name in (("lss", "line_shape_score"), ("norm_growth_rate", "norm_growth_rate")):
        if name in ds:
            var = ds[name]
            probes[column] = _per_probe(var)
            _with_interval(columns, column, var.mean(dim=[d for d in var.dims if d != "step"], skipna=False).values,
                           probes[column])
    if "line_shape_score" in ds and "layer" in ds.sizes:  # (step_lengths gives the layer axis)
        columns["lss_random_walk"] = np.full(len(steps), np.sqrt(ds.sizes["layer"]))
    if "layer_linearity" in ds:
        columns["linearity"] = ds["layer_linearity"].mean(dim="layer", skipna=False).values
        for layer in ds["layer"].values:
            columns[f"linearity_l{int(layer)}"] = ds["layer_linearity"].sel(layer=layer).values
    for name in ("measure_seconds", "peak_rss_mib"):
        if name in ds:
            columns[name] = ds[name].values
    headers = {}
    for short, name in SUMMARIES:
        if name not in ds:
            continue
        var = ds[name]
        per_probe_name = name[:-len("_avg")]
        variants = (_per_probe(ds[per_probe_name], keep=("orientation", "normalisation", "k"))
                    if per_probe_name in ds else None)  # [step, orientation, normalisation, k, probe]
        null, null_sd = ds.get(per_probe_name + "_null_avg"), ds.get(per_probe_name + "_null_sd")
        if null_sd is not None:  # independent under the null: the sd of a mean of n values is sqrt(sum sd^2) / n
            pooled = [d for d in null_sd.dims if d not in ("step", "orientation", "normalisation", "k")]
            count = int(np.prod([null_sd.sizes[d] for d in pooled]))
            null_sd = np.sqrt((null_sd ** 2).sum(dim=pooled, skipna=False)) / count
        for i, k in enumerate(var["k"].values):
            for j, o in enumerate(var["orientation"].values):
                for m, n in enumerate(var["normalisation"].values):
                    column = f"m_{short}_k{int(k)}_{o}_{n}"
                    probes[column] = None if variants is None else variants[:, j, m, i]
                    where = dict(k=i, orientation=j, normalisation=m)
                    _with_interval(columns, column, var.isel(**where).values, probes[column])
                    headers[column] = (f"m_{short}", f"k{int(k)}", str(o), str(n))
                    if null is not None and null_sd is not None:
                        columns[column + "_null"] = null.isel(**where).values
                        columns[column + "_null_sd"] = null_sd.isel(**where).values
                        if (o, n) == ("ujv", "norm"):  # the text table's null block (the same for vju)
                            headers[column + "_null"] = (f"null m_{short}", f"k{int(k)}", "both", str(n))
    return pd.DataFrame(columns), headers, probes


def differ(log, step_a, step_b, column=None, level=LEVEL):
    """Do steps A and B of a log differ in `column` (a tidy column with a probe interval; default the smallest K's
    m_offdiag_kK_ujv_norm)? A dict: the column's
    probe mean and interval at each step ("a", "b": (mean, low, high)), the change B - A with its paired interval
    ("change"), "differ" (the change's interval excludes 0) and "probes". Raises LogError naming what is missing."""
    import xarray as xr

    ds = log if isinstance(log, xr.Dataset) else open_log(log, group="all", variables=TIDY_VARIABLES)
    df, _, probes = _tidy(ds)
    with_interval = [c for c, values in probes.items() if values is not None]
    if column is None:
        column = next((c for c in with_interval if c.startswith("m_offdiag_") and c.endswith("_ujv_norm")), "m_offdiag")
    if column not in with_interval:
        raise LogError(f"no column {column} with per-probe values in this log: choose one of "
                       f"{', '.join(with_interval) or '(none: the log has no per-probe fields)'}")
    steps = list(df["step"])
    rows = []
    for step in (step_a, step_b):
        if step not in steps:
            raise LogError(f"step {step} is not in the log: it holds steps {_step_list(steps)}")
        rows.append(probes[column][steps.index(step)])
    change = difference(rows[0], rows[1], level)
    return {"column": column, "probes": rows[0].shape[-1], "level": level,
            "a": tuple(float(x) for x in probe_intervals(rows[0], level)),
            "b": tuple(float(x) for x in probe_intervals(rows[1], level)),
            "change": tuple(float(x) for x in change), "differ": bool(change[1] > 0 or change[2] < 0)}


def _step_list(steps):
    return ", ".join(str(s) for s in steps) if len(steps) <= 12 else \
        f"{', '.join(str(s) for s in steps[:6])}, ..., {', '.join(str(s) for s in steps[-3:])}"


def _differ_text(path, step_a, step_b, result):
    def interval(values):
        mean, low, high = values
        return f"{mean:.4f}" if np.isnan(low) else f"{mean:.4f} [{low:.4f}, {high:.4f}]"

    change, low, high = result["change"]
    verdict = ("cannot tell (one probe: no interval)" if result["probes"] < 2 else
               "cannot tell (non-finite values at a step)" if np.isnan(low) else
               "the steps differ" if result["differ"] else "the steps cannot be told apart")
    return (f"{path}: {result['column']} at step {step_a}: {interval(result['a'])}, at step {step_b}: "
            f"{interval(result['b'])}\nchange {step_b} - {step_a}: {change:+.4f}"
            + ("" if np.isnan(low) else f" [{low:+.4f}, {high:+.4f}]")
            + f" ({result['level']:.0%} bootstrap over {result['probes']} probes, paired): {verdict}\n")


# ----------------------------------------------------------------------------------------------------------
# Command line


def _table(df, headers, attrs, path):
    """The per-step table as fixed-width text: the scalar columns, then the m_K columns in blocks that fit the
    terminal, headed summary / K / orientation / normalisation (CSV name m_SUMMARY_kK_O_N)."""
    import pandas as pd

    lines = [f"{path}, model {attrs.get('model', '?')}, schema_version {attrs.get('schema_version', '?')}: "
             f"{len(df)} measurement{'s' if len(df) != 1 else ''}"
             + (f", steps {df['step'].iloc[0]} to {df['step'].iloc[-1]}" if len(df) > 1 else
                f", step {df['step'].iloc[0]}" if len(df) else " (none yet)")]
    if not len(df):
        return lines[0] + "\n"
    width = max(shutil.get_terminal_size((120, 24)).columns, 60)
    table = df.set_index("step")
    # m_K intervals go to the CSV only: the text table keeps one column per variant
    # and the nulls of ujv/norm only (the null is the same for both orientations); per-block linearity to the CSV
    table = table[[c for c in table.columns if not (c[-3:] in INTERVAL_SUFFIXES and c[:-3] in headers)
                   and not c.endswith("_null_sd") and not (c.endswith("_null") and c not in headers)
                   and not c.startswith("linearity_l")]]
    blocks = [[c for c in table.columns if c not in headers]]
    index_width = max([len(str(s)) for s in table.index] + [4]) + 1
    for summary_name in [f"{prefix}m_{short}" for short, _ in SUMMARIES for prefix in ("", "null ")]:
        by_k = {}
        for column, (summary, k, _, _) in headers.items():
            if summary == summary_name:
                by_k.setdefault(k, []).append(column)
        current = []
        for group in by_k.values():
            if current and index_width + 7 * (len(current) + len(group)) + 1 > width:
                blocks.append(current)
                current = []
            current = current + group
        if current:
            blocks.append(current)
    for i, block in enumerate(blocks):
        part = table[block]
        if i:
            part = part.set_axis(pd.MultiIndex.from_tuples([headers[c] for c in block]), axis=1)
        text = part.to_string(float_format=lambda x: f"{x:.4f}", na_rep="-")
        lines += [""] + [line.rstrip() for line in text.splitlines()]
    if len(blocks) > 1:
        lines += ["", "m_offdiag, m_adjacent: mean depth coupling m_K (lower = more coupled) per K, orientation and",
                  "normalisation; CSV columns m_offdiag_k10_ujv_norm, ..., with 95% probe intervals in ..._lo and",
                  "..._hi (--differ A B compares two steps); null m_*: the same mean for unrelated (Haar-random)",
                  "bases, with its sd in the CSV's ..._null_sd: below null - 2 sd is coupled; --help describes",
                  "every column"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="coupling_log.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", help="a coupling log (coupling.h5) or a run directory holding one")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--csv", action="store_true", help="print the per-step table as CSV")
    mode.add_argument("--check", action="store_true",
                      help="check every row against its row_crc32; exit 1 when one differs")
    mode.add_argument("--differ", nargs=2, type=int, metavar=("A", "B"),
                      help="do steps A and B differ? the paired 95%% interval of the change in --column")
    parser.add_argument("--column", help="with --differ: a tidy column with an interval (default: the smallest K's "
                                         "m_offdiag_kK_ujv_norm)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            path = _resolve(args.log)
            with _open(path) as f:
                has_checksums = any(name in f and ROW_CHECKSUM in f[name] for name in GROUPS)
            found = check(path)
            for group, rows in found.items():
                print(f"{path}: /{group} rows {rows[:20]} do not match their {ROW_CHECKSUM}: the log is damaged")
            if not found:
                print(f"{path}: every row matches its {ROW_CHECKSUM}" if has_checksums else
                      f"{path}: no {ROW_CHECKSUM} (a log written before the column): nothing to check")
            return 1 if found else 0
        path = _resolve(args.log)
        ds = open_log(path, group="all", variables=TIDY_VARIABLES)
        if args.differ:
            text = _differ_text(path, *args.differ, differ(ds, *args.differ, column=args.column))
        else:
            df, headers, _ = _tidy(ds)
            text = df.to_csv(index=False) if args.csv else _table(df, headers, ds.attrs, path)
    except LogError as e:
        print(f"coupling_log.py: {e}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as e:  # HDF5 could open the file but not read a dataset
        print(f"coupling_log.py: {args.log}: HDF5 cannot read it ({e}); the file is damaged", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"coupling_log.py: the table needs xarray and pandas ({e}): run it with /usr/bin/python3 (Debian's "
              "python3-xarray, python3-pandas); --check needs only h5py", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. | head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
