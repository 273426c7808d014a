"""Reads a directory of TensorBoard event files the way TensorBoard does and checks its scalars.

Usage: read_tensorboard.py EVENT_DIR --expect TAG:N [TAG:N ...] [--values TAG=STEP:VALUE,...]
--expect: curve TAG must hold exactly N scalar events, with strictly increasing steps and finite
values. TensorBoard's loader stops at the first record whose CRC does not match without an
error, so a count short of N is how a damaged file shows.
--values: exact values (to float32 precision), comma-separated; an entry without TAG= continues
the previous tag's: "loss=1:2.5,2:1.25,acc=1:0.5".
Exits 0 when all holds, 1 (with one line per problem) when not, 77 (a ctest skip) when
tensorboard cannot be imported.
"""
import argparse
import math
import os
import sys


def parse_expect(text):
    tag, sep, count = text.rpartition(":")
    if not sep or not tag or not count.isdigit():
        raise argparse.ArgumentTypeError(f"--expect {text!r} is not TAG:N")
    return tag, int(count)


def parse_values(text):
    values, tag = [], None
    for item in filter(None, text.split(",")):
        if "=" in item:
            tag, _, item = item.rpartition("=")
        step, sep, value = item.partition(":")
        try:
            if not tag or not sep:
                raise ValueError
            values.append((tag, int(step), float(value)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--values entry {item!r} is not [TAG=]STEP:VALUE") from None
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event_dir")
    parser.add_argument("--expect", type=parse_expect, nargs="+", required=True, metavar="TAG:N")
    parser.add_argument("--values", type=parse_values, nargs="+", default=[], metavar="TAG=STEP:VALUE,...")
    args = parser.parse_args()
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError as e:
        print(f"read_tensorboard: skipped: cannot import tensorboard ({e})")
        sys.exit(77)
    if not os.path.isdir(args.event_dir):
        print(f"read_tensorboard: {args.event_dir} is not a directory")
        sys.exit(1)

    accumulator = event_accumulator.EventAccumulator(args.event_dir, size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    tags = set(accumulator.Tags().get(event_accumulator.SCALARS, []))
    problems = []
    scalars, counts = {}, {}
    for tag, count in args.expect:
        if tag not in tags:
            problems.append(f"no scalars tagged {tag!r} (tags: {sorted(tags)})")
            continue
        events = accumulator.Scalars(tag)
        scalars[tag] = {e.step: e.value for e in events}
        counts[tag] = len(events)
        if len(events) != count:
            problems.append(f"{tag}: {len(events)} events, expected {count}")
        steps = [e.step for e in events]
        if any(b <= a for a, b in zip(steps, steps[1:])):
            problems.append(f"{tag}: steps do not strictly increase: {steps}")
        bad = [(e.step, e.value) for e in events if not math.isfinite(e.value)]
        if bad:
            problems.append(f"{tag}: non-finite values (step, value): {bad}")
    for tag, step, want in (v for group in args.values for v in group):
        if tag not in scalars:
            if tag not in tags:
                problems.append(f"--values: no scalars tagged {tag!r}")
                continue
            scalars[tag] = {e.step: e.value for e in accumulator.Scalars(tag)}
        got = scalars[tag].get(step)
        if got is None:
            problems.append(f"{tag}: no event at step {step}")
        elif not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-30):  # stored as float32
            problems.append(f"{tag} at step {step}: {got!r}, expected {want!r}")
    for p in problems:
        print("read_tensorboard:", p)
    summary = ", ".join(f"{tag}: {counts.get(tag, 0)}" for tag, _ in args.expect)
    print(f"read_tensorboard: {args.event_dir}: {summary}; {'ok' if not problems else 'FAILED'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
