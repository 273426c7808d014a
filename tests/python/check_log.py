"""Reads a coupling log the way users do (h5py, SWMR) and checks its structure.

Usage: check_log.py LOG STEPS [--train-rows N]
STEPS: the comma-separated measurement steps the log must hold, in order. Checks the schema
attributes, that every /measurement dataset has step as axis 0, named dimension scales on
every axis, description and units attributes (on the scales too), the CF flag_values and
flag_meanings of orientation and normalisation, the root scales of /probes, every row against its
row_crc32 (when the log has the column), and the /train row count when given. Exits 0 when all
holds.
"""
import argparse
import sys

import h5py
import numpy as np

import coupling_path  # noqa: F401  (python/ on sys.path)
from coupling import log as coupling_log


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("log")
    parser.add_argument("steps")
    parser.add_argument("--train-rows", type=int)
    args = parser.parse_args()
    want = [int(s) for s in args.steps.split(",") if s]
    problems = []
    with h5py.File(args.log, "r", swmr=True, libver="latest") as f:
        if f.attrs["schema_version"] != 4:
            problems.append(f"schema_version {f.attrs['schema_version']}")
        for key in ("libcoupling_version", "git_revision", "model", "model_config", "engine_config"):
            if not isinstance(f.attrs[key], str):
                problems.append(f"attribute {key} is not a str")
        steps = list(f["measurement/step"][:])
        if steps != want:
            problems.append(f"steps {steps} != {want}")
        labels = {"orientation": "ujv vju", "normalisation": "norm trace"}
        for name, ds in f["measurement"].items():
            if h5py.h5ds.is_scale(ds.id) and name != "step":  # a fixed coordinate axis
                if ds.attrs.get("units") != "1" or "description" not in ds.attrs:
                    problems.append(f"scale {name} lacks units '1' or a description")
                if name in labels and (ds.attrs.get("flag_meanings") != labels[name]
                                       or list(ds.attrs.get("flag_values", [])) != [0, 1]):
                    problems.append(f"scale {name} lacks flag_values [0, 1] and flag_meanings '{labels[name]}'")
                continue
            for attribute in ("description", "units"):
                if attribute not in ds.attrs:
                    problems.append(f"{name} has no {attribute} attribute")
            if name == "step":
                continue
            if ds.shape[0] != len(want):
                problems.append(f"{name} has {ds.shape[0]} rows")
            for axis in range(ds.ndim):
                if len(ds.dims[axis]) != 1:
                    problems.append(f"{name} axis {axis} has no dimension scale")
            if ds.dims[0][0].name != "/measurement/step":
                problems.append(f"{name} axis 0 is {ds.dims[0][0].name}")
        if "probes" in f:
            scales = [f["probes"].dims[axis][0].name if len(f["probes"].dims[axis]) == 1 else None
                      for axis in range(f["probes"].ndim)]
            if scales[0] != "/probe" or None in scales:
                problems.append(f"/probes has the dimension scales {scales}")
        if len(want) and not np.isfinite(f["measurement/depth_coupling"][:]).all():
            problems.append("non-finite depth_coupling")
        for group in ("measurement", "train", "eval"):
            damaged = coupling_log.damaged_rows(f[group]) if group in f else []
            if damaged:
                problems.append(f"/{group} rows {damaged} do not match their row_crc32")
        if args.train_rows is not None and f["train/loss"].shape[0] != args.train_rows:
            problems.append(f"train rows {f['train/loss'].shape[0]} != {args.train_rows}")
    for p in problems:
        print("check_log:", p)
    print(f"check_log: {args.log}: {len(want)} measurements, {'ok' if not problems else 'FAILED'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
