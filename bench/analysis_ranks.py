"""A checkpoint series on one rank and on two (docs/analysis.md, docs/performance.md section 11):
coupling-analyze --hf over N checkpoints of a random-weight Hugging Face shape (scripts/make_hf_shape.py,
BF16; the Hub's revision names step1000, step2000, ... as links to one directory, so every checkpoint is
read from the page cache), P probes of 128 seeded token ids, last token, default options, in the settings
  one        1 rank, every core (--threads 0)
  one-1t     1 rank, 1 thread (what each of two ranks gets on a 2-core machine)
  two        2 ranks through scripts/launch.sh, each with its share of the cores (LOCAL_WORLD_SIZE)
measured side by side in one run: wall seconds, seconds per checkpoint, the speed-up of each setting over
`one`, the threads a rank used, rank 0's peak RSS (the tool's last line), and the largest difference of
each log from the first setting's and from the 1-rank log with the same threads per rank, over every
measured field (relative to the field's scale): the thread count changes float32 rounding, the split
over ranks does not.

    /usr/bin/python3 bench/analysis_ranks.py pythia-160m --checkpoints 6 --probes 8 \\
        --scratch /var/tmp/shapes --json bench/results.json
    /usr/bin/python3 bench/analysis_ranks.py pythia-1.4b --checkpoints 5 --probes 2 --settings one,two \\
        --scratch /var/tmp/shapes --json bench/results.json
"""
import os
import random
import re
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_streaming import ROOT, append_rows, make_shape, run_child, shape_arguments  # noqa: E402

BOOKKEEPING = {"step", "scheduled_step", "tokens_seen", "wall_seconds", "measure_seconds", "train_seconds",
               "peak_rss_mib", "row_crc32"}


def largest_difference(a, b):
    """The largest |a - b| over every measured float field, relative to that field's largest magnitude."""
    worst = 0.0
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name, x in fa["measurement"].items():
            if name in BOOKKEEPING or x.dtype.kind != "f" or x.ndim == 0 or x.shape[0] == 0:
                continue
            x, y = x[()], fb["measurement"][name][()]
            finite = np.isfinite(x)
            scale = np.abs(x[finite]).max() if finite.any() else 0.0
            if scale > 0:
                worst = max(worst, float(np.abs(x - y)[finite].max() / scale))
    return worst


def main():
    parser = shape_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=int, default=6, help="checkpoints in the series")
    parser.add_argument("--probes", type=int, default=8, help="probes of 128 token ids")
    parser.add_argument("--settings", default="one,one-1t,two", help="which of one, one-1t, two")
    args = parser.parse_args()
    settings = args.settings.split(",")
    cores = os.cpu_count()
    analyze = os.path.join(args.bin, "coupling-analyze")
    rows = []
    print(f"analysis_ranks: {cores} cores; {args.checkpoints} checkpoints, {args.probes} probes of 128 tokens")
    print(f"{'shape':<14} {'setting':<7} {'ranks':>5} {'threads':>7} {'seconds':>8} {'s/ckpt':>7} {'speed-up':>8} "
          f"{'rank MiB':>8} {'vs first':>9} {'vs same threads':>15}")
    for spec in args.shapes:
        directory = make_shape(spec, args.scratch, args.venv_python)
        series = os.path.join(args.scratch, "series")
        shutil.rmtree(series, ignore_errors=True)
        os.makedirs(series)
        steps = [1000 * (i + 1) for i in range(args.checkpoints)]
        for step in steps:
            os.symlink(directory, os.path.join(series, f"step{step}"))
        with open(os.path.join(directory, "config.json")) as f:
            vocab = int(re.search(r'"vocab_size":\s*(\d+)', f.read()).group(1))
        rng = random.Random(1)
        ids = os.path.join(args.scratch, "series_ids.txt")
        with open(ids, "w") as f:
            for _ in range(args.probes):
                f.write(" ".join(str(rng.randrange(vocab)) for _ in range(128)) + "\n")
        logs, threads_of, base = {}, {}, None
        for setting in settings:
            log = os.path.join(args.scratch, f"series_{setting}.h5")
            if os.path.exists(log):
                os.remove(log)
            command = ["--hf"] + [os.path.join(series, f"step{s}") for s in steps] + ["--probe-ids", ids, "--log", log]
            if setting == "two":
                env = dict(os.environ, COUPLING_ANALYZE=analyze, MASTER_PORT=str(29400 + random.randrange(500)))
                argv, ranks = ["bash", os.path.join(ROOT, "scripts", "launch.sh"), "2", "analyze"] + command, 2
            else:
                env, ranks = None, 1
                argv = [analyze] + command + ["--threads", "1" if setting == "one-1t" else "0"]
            start = time.perf_counter()
            process = subprocess.run(argv, capture_output=True, text=True, env=env)
            seconds = time.perf_counter() - start
            output = process.stdout + process.stderr
            if process.returncode != 0:
                sys.exit(f"analysis_ranks: {setting} failed (status {process.returncode}):\n{output[-3000:]}")
            threads = int(re.search(r"compute: (\d+) intra-op thread", output).group(1))
            peak = float(re.search(r"peak RSS ([0-9]+) MiB", output).group(1))
            base = base or seconds
            logs[setting] = log
            difference = largest_difference(logs[settings[0]], log)
            same = next((s for s, t in threads_of.items() if t == threads and s != setting), None)
            threads_of[setting] = threads
            same_difference = largest_difference(logs[same], log) if same else None
            row = {"case": "analysis_ranks", "shape": spec, "setting": setting, "ranks": ranks,
                   "threads_per_rank": threads, "cores": cores, "checkpoints": args.checkpoints,
                   "probes": args.probes, "tokens": 128, "seconds": seconds,
                   "seconds_per_checkpoint": seconds / args.checkpoints, "speedup_vs_first": base / seconds,
                   "rank0_peak_rss_mib": peak, "max_difference_vs_first": difference,
                   "max_difference_vs_same_threads": same_difference}
            rows.append(row)
            print(f"{spec:<14} {setting:<7} {ranks:>5} {threads:>7} {seconds:>8.1f} {seconds / args.checkpoints:>7.1f} "
                  f"{base / seconds:>8.2f} {peak:>8.0f} {difference:>9.1e} "
                  f"{'-' if same is None else f'{same_difference:.1e} ({same})':>15}", flush=True)
        if not args.keep:
            shutil.rmtree(directory)
        shutil.rmtree(series)
    if args.json:
        append_rows(args.json, rows)


if __name__ == "__main__":
    main()
