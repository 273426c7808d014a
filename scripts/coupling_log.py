#!/usr/bin/python3
"""Reading libcoupling's HDF5 logs from Python (h5py): the row checks.

Every row of /measurement, /train and /eval carries `row_crc32`, the CRC-32 of "NAME:CRC;" over the
group's other row datasets in name order, CRC being zlib.crc32 of that dataset's row as stored
(docs/hdf5-schema.md). damaged_rows() recomputes it; logs written before the column have none.

Usage as a script: scripts/coupling_log.py LOG.h5   (exit 1 and the damaged rows if any)
"""
import sys
import zlib

import h5py
import numpy as np

ROW_CHECKSUM = "row_crc32"


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
    with h5py.File(path, "r", swmr=True) as f:
        return {name: rows for name in ("measurement", "train", "eval") if name in f
                for rows in [damaged_rows(f[name])] if rows}


if __name__ == "__main__":
    found = check(sys.argv[1])
    for group, rows in found.items():
        print(f"{sys.argv[1]}: /{group} rows {rows[:20]} do not match their {ROW_CHECKSUM}: the log is damaged")
    sys.exit(1 if found else 0)
