"""Reads a study grid file (TOML, docs/study.md) and prints its members for scripts/study.sh.

Usage: study_grid.py GRID.toml [--out DIR] [--root DIR] [--train PATH] [--steps N]
       study_grid.py GRID.toml --show model|jobs|tiny-corpus
Prints one line per member, "NAME|FLAGS": FLAGS are the member's coupling-train flags, each value
shell-quoted (study.sh reads them back with eval), longest-running member first. --show prints one
top-level setting instead (an empty line for a tiny-corpus the file does not ask for).
A bad file, or a flag that `coupling-train MODEL --help` (with --train) does not list, exits 2 with
one line on stderr and nothing on stdout.

The file:
  model = "gpt"               # or "vit": the coupling-train subcommand every member trains
  jobs = 2                    # optional: members that train at once (study.sh --jobs overrides it)
  tiny-corpus = "tiny.txt"    # optional: study.sh writes OUT/tiny.txt, 400 copies of Genesis 1:1
  description = "..."         # optional, free text
  [fixed]                     # flags every member gets: flag name without "--" = value
  steps = 1500
  measure-schedule = "log:64 every:100"
  [grid]                      # the product of these lists, one member per combination
  layers = [2, 4, 8]
  seed = [1, 2, 3]
A grid that is not one product is a union of products: [[grid]] tables instead of one [grid], each
a product of its own lists (studies/warmup.toml). Members are named from their own table's values.
Values are integers, floats or strings (no booleans: coupling-train has no on/off flags a study
needs); "{out}" in a string becomes the study directory (--out) and "{root}" the repository root.
A member is named from its grid values in the file's order, each with a short prefix (layers l,
d-model d, lr lr, seed s, ... see PREFIX): l2_d128_s1. Unless the file sets them, every member gets
--threads 1 --eval-every 0 --log-every 100 --ckpt-every STEPS/4. study.sh sets --out itself, so
out, resume, config, override and log (the study reads OUT/MEMBER/coupling.h5) are refused.
--steps N sets steps in every member (refused when steps is a grid axis).
"""
import argparse
import itertools
import math
import os
import re
import shlex
import subprocess
import sys
import tomllib

from coupling._paths import repository

TOP_LEVEL = {"model", "jobs", "tiny-corpus", "description", "fixed", "grid"}
MODELS = ("gpt", "vit")
REFUSED = {"out": "study.sh sets --out OUT/MEMBER", "resume": "study.sh resumes members itself",
           "config": "give the flags in the grid file", "override": "study.sh resumes members itself",
           "log": "the study reads OUT/MEMBER/coupling.h5", "help": "not a training flag",
           "version": "not a training flag"}
PREFIX = {"layers": "l", "d-model": "d", "lr": "lr", "seed": "s", "heads": "h", "steps": "steps",
          "weight-decay": "wd", "warmup": "wu", "batch": "b", "context": "ctx", "dropout": "drop",
          "patch": "p", "min-lr-fraction": "minlr", "grad-clip": "clip", "augment": "aug"}
STUDY_DEFAULTS = {"threads": 1, "eval-every": 0, "log-every": 100}
# The trainer's defaults where its --help cannot be read (used for --ckpt-every and the ordering only).
FALLBACK_DEFAULTS = {"gpt": {"steps": 1200, "layers": 4, "d-model": 128, "batch": 32, "context": 128},
                     "vit": {"steps": 4000, "layers": 4, "d-model": 64, "batch": 128, "patch": 7}}


class GridError(Exception):
    pass


def trainer_flags(train, model):
    """{flag: (type, default, choices)} from `train MODEL --help`; type INT, FLOAT or TEXT (None if unknown)."""
    try:
        text = subprocess.run([train, model, "--help"], capture_output=True, text=True, timeout=60).stdout
    except OSError as e:
        raise GridError(f"cannot run {train} {model} --help ({e})") from None
    flags = {}
    for line in text.splitlines():
        m = re.match(r"\s+(?:-\w,)?--([a-z][a-z0-9-]*)(?:\s+(INT|FLOAT|TEXT)(?::\{([^}]*)\})?(?:=(\S+))?)?", line)
        if not m:
            continue
        name, kind, choices, default = m.groups()
        if kind is None:  # e.g. "--device {cpu,cuda,cuda:N,auto}=auto": text with a choice list
            m2 = re.match(r"\s+--[a-z0-9-]+\s+\{([^}]*)\}(?:=(\S+))?", line)
            kind, choices, default = ("TEXT", m2.group(1), m2.group(2)) if m2 else (None, None, None)
        options = choices.split(",") if choices else None
        if options and any(":" in o for o in options):  # a pattern such as cuda:N: the trainer checks it
            options = None
        flags[name] = (kind, default, options)
    if "steps" not in flags:
        raise GridError(f"{train} {model} --help lists no --steps: is {train} coupling-train?")
    return flags


def scalar(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        what = "a boolean" if isinstance(value, bool) else f"a {type(value).__name__}"
        raise GridError(f"{where} is {what}; give an integer, a float or a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise GridError(f"{where} is {value}; give a finite number")
    return value


def check_flag(name, value, where, model, flags):
    if name in REFUSED:
        raise GridError(f"{where}: '{name}' cannot be set in a grid ({REFUSED[name]})")
    if flags is None:
        return
    if name not in flags:
        raise GridError(f"{where}: '{name}' is not a flag of coupling-train {model} (see coupling-train {model} --help)")
    kind, _, choices = flags[name]
    if kind == "INT" and not isinstance(value, int):
        raise GridError(f"{where} = {value!r}: --{name} takes an integer")
    if kind == "FLOAT" and not isinstance(value, (int, float)):
        raise GridError(f"{where} = {value!r}: --{name} takes a number")
    if choices and str(value) not in choices:
        raise GridError(f"{where} = {value!r}: --{name} takes one of {', '.join(choices)}")


def text(value):
    """A value as coupling-train reads it: integers plain, floats in Python's shortest round-trip form."""
    return repr(value) if isinstance(value, float) else str(value)


def name_part(key, value):
    return PREFIX.get(key, key.replace("-", "")) + re.sub(r"[^A-Za-z0-9.+-]", "-", text(value))


def substitute(value, out, root):
    return value.replace("{out}", out).replace("{root}", root) if isinstance(value, str) else value


def load(path):
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise GridError(f"cannot read it ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise GridError(f"not valid TOML ({e})") from None
    unknown = sorted(set(data) - TOP_LEVEL)
    if unknown:
        raise GridError(f"unknown top-level key '{unknown[0]}' (known: {', '.join(sorted(TOP_LEVEL))})")
    if data.get("model") not in MODELS:
        raise GridError(f"model = {data.get('model')!r}: give model = \"gpt\" or \"vit\"")
    jobs = data.get("jobs", 2)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise GridError(f"jobs = {jobs!r}: give a positive integer")
    tiny = data.get("tiny-corpus", "")
    if not isinstance(tiny, str) or "/" in tiny or tiny in (".", ".."):
        raise GridError(f"tiny-corpus = {tiny!r}: give a file name (it is written in the study directory)")
    if not isinstance(data.get("fixed", {}), dict):
        raise GridError("'fixed' must be a table ([fixed])")
    grid = data.get("grid", {})
    if not isinstance(grid, (dict, list)) or any(not isinstance(g, dict) for g in (grid if isinstance(grid, list) else [])):
        raise GridError("'grid' must be a table ([grid]) or tables ([[grid]])")
    if not grid or not all(grid_tables(data)):
        raise GridError("no [grid] table, or an empty one: a study needs at least one list of values")
    for table in grid_tables(data):
        for key, values in table.items():
            if not isinstance(values, list) or not values:
                raise GridError(f"[grid] {key} must be a non-empty list of values, e.g. {key} = [1, 2]")
            for i, v in enumerate(values):
                scalar(v, f"[grid] {key}[{i}]")
            if len({text(v) for v in values}) != len(values):
                raise GridError(f"[grid] {key} repeats a value")
    for key, value in data.get("fixed", {}).items():
        scalar(value, f"[fixed] {key}")
        if any(key in table for table in grid_tables(data)):
            raise GridError(f"'{key}' is both in [fixed] and in [grid]")
    return data


def grid_tables(data):
    """The products a grid is the union of: its one [grid] table, or each of its [[grid]] tables."""
    grid = data.get("grid", {})
    return grid if isinstance(grid, list) else [grid]


def members(data, out, root, flags, steps):
    model, fixed, tables = data["model"], dict(data.get("fixed", {})), grid_tables(data)
    for key, value in fixed.items():
        check_flag(key, value, f"[fixed] {key}", model, flags)
    for table in tables:
        for key, values in table.items():
            for i, v in enumerate(values):
                check_flag(key, v, f"[grid] {key}[{i}]", model, flags)
    if steps is not None:
        if any("steps" in table for table in tables):
            raise GridError("--steps conflicts with the grid's steps axis; drop one")
        fixed["steps"] = steps
    defaults = dict(FALLBACK_DEFAULTS[model])
    for key, (kind, default, _) in (flags or {}).items():
        if kind in ("INT", "FLOAT") and default is not None:
            defaults[key] = float(default)
    result, names = [], set()
    for grid, combination in ((g, c) for g in tables for c in itertools.product(*g.values())):
        values = dict(zip(grid, combination))
        name = "_".join(name_part(k, v) for k, v in values.items())
        if name in names:
            raise GridError(f"two members are both named {name}; give the grid values that tell them apart")
        names.add(name)
        member = dict(STUDY_DEFAULTS)
        member.update({k: substitute(v, out, root) for k, v in fixed.items()})
        member.update({k: substitute(v, out, root) for k, v in values.items()})
        n_steps = int(member.get("steps", defaults["steps"]))
        member.setdefault("ckpt-every", max(1, n_steps // 4))
        result.append((cost(model, member, defaults), name, member))
    result.sort(key=lambda t: -t[0])  # longest first: the slowest members do not end the study alone
    return [(name, member) for _, name, member in result]


def cost(model, member, defaults):
    """A rough training cost (steps x depth x width^2 x tokens per step), only to order the members."""
    def get(key):
        try:
            return float(member.get(key, defaults.get(key, 1)))
        except (TypeError, ValueError):
            return 1.0
    tokens = get("batch") * (get("context") if model == "gpt" else (28 / max(get("patch"), 1)) ** 2)
    return get("steps") * get("layers") * get("d-model") ** 2 * tokens


def main(argv=None):
    parser = argparse.ArgumentParser(prog="study_grid.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid")
    parser.add_argument("--out", default="runs/study")
    parser.add_argument("--root", default=repository() or os.getcwd())
    parser.add_argument("--train", help="coupling-train, to check the flags against its --help")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--show", choices=("model", "jobs", "tiny-corpus"))
    args = parser.parse_args(argv)
    try:
        data = load(args.grid)
        if args.show:
            print(data.get(args.show, 2 if args.show == "jobs" else ""))
            return 0
        if args.steps is not None and args.steps < 1:
            raise GridError(f"--steps {args.steps}: give a positive number of steps")
        flags = trainer_flags(args.train, data["model"]) if args.train else None
        lines = []
        for name, member in members(data, args.out, args.root, flags, args.steps):
            lines.append(name + "|" + " ".join(f"--{k} {shlex.quote(text(v))}" for k, v in member.items()))
    except GridError as e:
        print(f"study_grid.py: {args.grid}: {e}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
