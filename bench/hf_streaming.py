"""Models bigger than memory, measured end to end: coupling-analyze --hf on random-weight Hugging
Face directories of named shapes (scripts/make_hf_shape.py, BF16), one probe of 128 seeded token
ids, last token, default K, against the GEMM bound of materialising the Jacobians: 2 d x (block
parameters) flops per block at the sgemm rate measured in the same run, just before each model:
sgemm(1024) as coupling-bench measures it (the bound of docs/performance.md), and sgemm(4096),
nearer the size of a large block's products.
Prints a table and appends its rows to a JSON list (bench/results.json's format); peak memory
is the child's max RSS (wait4), file-backed pages included, beside the tool's own figure.

Run it with the Python whose torch is the LibTorch the tool links (its sgemm is the rate):
    /usr/bin/python3 bench/hf_streaming.py --bin build/bin llama-3-8b pythia-1.4b llama-3-8b:8 \
        llama-3-70b:4 --scratch /var/tmp/shapes --json bench/results.json      # Debian, OpenBLAS
    .venv/bin/python bench/hf_streaming.py --bin build-torch2/bin llama-3-8b ...  # pip, MKL
A shape is NAME or NAME:LAYERS (the depth cut). The directories are written into --scratch with
the venv's transformers and removed after their row (--keep keeps them). docs/performance.md
has the results.
"""
import argparse
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sgemm_gflops(n, repeats=3):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def block_parameters(directory):
    """Parameters of one block (the first), from the safetensors headers (sharded or single file)."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
    else:
        weight_map = None
    total = 0
    for shard in sorted(set(weight_map.values())) if weight_map else ["model.safetensors"]:
        with open(os.path.join(directory, shard), "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(length))
        for name, entry in header.items():
            if name == "__metadata__" or not re.search(r"\.(h|layers|layer)\.0\.", name):
                continue
            count = 1
            for extent in entry["shape"]:
                count *= extent
            total += count
    return total


def run_child(argv):
    """(exit status, output, max RSS in MiB) of a child process."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, output, usage.ru_maxrss / 1024


def make_shape(spec, scratch, venv_python):
    """The directory of shape NAME or NAME:LAYERS under `scratch`, written unless it is there."""
    name, _, layers = spec.partition(":")
    directory = os.path.join(scratch, spec.replace(":", "-"))
    if not os.path.exists(os.path.join(directory, "model.safetensors.index.json")):
        shutil.rmtree(directory, ignore_errors=True)
        command = [venv_python, os.path.join(ROOT, "scripts", "make_hf_shape.py"), name, directory]
        subprocess.run(command + (["--layers", layers] if layers else []), check=True, stdout=subprocess.DEVNULL)
    return directory


def append_rows(path, rows):
    """Appends `rows` to the JSON list at `path` in the file's own layout: one object per row,
    separated by ",\n"."""
    with open(path) as f:
        text = f.read().rstrip()
    separator = "\n,\n" if json.loads(text) else "\n"
    with open(path, "w") as f:
        f.write(text[:-1].rstrip() + separator + "\n,\n".join(json.dumps(row, indent=2) for row in rows) + "\n]\n")


def shape_arguments(description):
    """The command line of a benchmark over shapes: the shapes, the tools' directory, the scratch
    directory, the JSON list to append to, --keep and the venv's python."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("shapes", nargs="+", help="NAME or NAME:LAYERS (scripts/make_hf_shape.py --list)")
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"), help="directory of coupling-analyze")
    parser.add_argument("--scratch", required=True, help="where the model directories are written")
    parser.add_argument("--json", help="append the rows to this JSON list")
    parser.add_argument("--keep", action="store_true", help="keep the model directories")
    parser.add_argument("--venv-python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    return parser


def main():
    args = shape_arguments(__doc__.split("\n\n")[0]).parse_args()
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    rows = []
    print(f"hf_streaming: LibTorch {torch.__version__} ({'MKL' if torch.backends.mkl.is_available() else 'OpenBLAS'}),"
          f" {threads} threads, {platform.processor() or platform.machine()}")
    print(f"{'shape':<16} {'blocks':>6} {'d':>5} {'seconds':>9} {'bound s':>9} {'x bound':>8} {'x b4096':>8} "
          f"{'s/block':>8} {'peak MiB':>9} {'tool MiB':>9}")
    for spec in args.shapes:
        name = spec.partition(":")[0]
        directory = make_shape(spec, args.scratch, args.venv_python)
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        d = config.get("hidden_size", config.get("n_embd"))
        blocks = config.get("num_hidden_layers", config.get("n_layer"))
        vocab = config["vocab_size"]
        rng = random.Random(1)
        ids = os.path.join(args.scratch, "ids.txt")
        with open(ids, "w") as f:
            f.write(" ".join(str(rng.randrange(vocab)) for _ in range(128)) + "\n")
        log = os.path.join(args.scratch, "streaming.h5")
        if os.path.exists(log):
            os.remove(log)
        rate, large_rate = sgemm_gflops(1024), sgemm_gflops(4096)
        flops = blocks * 2 * d * block_parameters(directory)
        bound, large_bound = flops / (rate * 1e9), flops / (large_rate * 1e9)
        start = time.perf_counter()
        status, output, peak = run_child([os.path.join(args.bin, "coupling-analyze"), "--hf", directory,
                                          "--probe-ids", ids, "--log", log])
        seconds = time.perf_counter() - start
        if status != 0:
            sys.exit(f"hf_streaming: coupling-analyze failed on {spec} (status {status}):\n{output}")
        tool = re.search(r"peak RSS ([0-9]+) MiB", output)
        row = {"case": "hf_streaming", "shape": name, "blocks": blocks, "d_model": d, "probes": 1, "tokens": 128,
               "libtorch": torch.__version__, "threads": threads, "sgemm_gflops": rate,
               "sgemm4096_gflops": large_rate, "seconds": seconds, "gemm_bound_seconds": bound,
               "ratio_to_bound": seconds / bound, "ratio_to_bound_sgemm4096": seconds / large_bound,
               "seconds_per_block": seconds / blocks,
               "peak_rss_mib": peak, "tool_peak_rss_mib": float(tool.group(1)) if tool else None}
        rows.append(row)
        print(f"{spec:<16} {blocks:>6} {d:>5} {seconds:>9.1f} {bound:>9.1f} {seconds / bound:>8.3f} "
              f"{seconds / large_bound:>8.3f} {seconds / blocks:>8.2f} {peak:>9.0f} "
              f"{row['tool_peak_rss_mib'] or float('nan'):>9.0f}   (sgemm {rate:.0f} / {large_rate:.0f} GFLOP/s)",
              flush=True)
        if not args.keep:
            shutil.rmtree(directory)
    if args.json:
        append_rows(args.json, rows)


if __name__ == "__main__":
    main()
