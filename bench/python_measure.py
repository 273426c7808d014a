"""coupling.measure from Python against coupling-analyze --hf on the same model, probes and threads, side by side
in one run: a GPT-2-small-shaped model (12 blocks, d=768, random init, saved by transformers), 8 probes of 128
seeded ids, the last token, default K and spectra. Each side runs in a child process REPEATS times, alternating:
  python   .venv/bin/python: load with transformers, then time coupling.measure(model, ids) (the C++ model is
           built on the live parameters inside the call: GPT-2's Conv1D weights are re-laid out, i.e. copied)
  analyze  build-torch2/bin/coupling-analyze --hf DIR: its log's measure_seconds (the measurement, blocks
           read from safetensors inside it), and the process's wall time
Prints the measurement seconds, whole-process seconds and max RSS of each, the ratios python / analyze, and
appends rows to a JSON list (bench/results.json's format):
    .venv/bin/python bench/python_measure.py --scratch /var/tmp/shapes --threads 2 --json bench/results.json
docs/performance.md section 14 has the results.
"""
import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_streaming import ROOT, append_rows, run_child  # noqa: E402

CHILD = """
import sys, time, torch
sys.path.insert(0, {python!r})
import coupling
from transformers import GPT2LMHeadModel
torch.set_num_threads({threads})
model = GPT2LMHeadModel.from_pretrained({directory!r})
start = time.perf_counter()
ds = coupling.measure(model, {ids!r})
print("MEASURE", time.perf_counter() - start, ds.attrs["seconds_total"])
"""


def make_model(directory, python):
    if not os.path.exists(os.path.join(directory, "config.json")):
        subprocess.run([python, "-c", "import sys, torch\nfrom transformers import GPT2Config, GPT2LMHeadModel\n"
                        "torch.manual_seed(0)\nGPT2LMHeadModel(GPT2Config()).save_pretrained(sys.argv[1])", directory],
                       check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scratch", required=True, help="where the model directory is written (kept)")
    parser.add_argument("--bin", default=os.path.join(ROOT, "build-torch2", "bin"), help="coupling-analyze's directory")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="append the rows to this JSON list")
    a = parser.parse_args()
    python = os.path.join(ROOT, ".venv", "bin", "python")
    directory = os.path.join(a.scratch, "gpt2-small")
    make_model(directory, python)
    work = tempfile.mkdtemp()
    ids = os.path.join(work, "ids.txt")
    rng = random.Random(1)
    with open(ids, "w") as f:
        f.writelines(" ".join(str(rng.randrange(50257)) for _ in range(128)) + "\n" for _ in range(8))
    child = CHILD.format(python=os.path.join(ROOT, "python"), threads=a.threads, directory=directory, ids=ids)
    results = {"python": [], "analyze": []}
    for repeat in range(a.repeats):
        start = time.perf_counter()
        status, output, rss = run_child([python, "-c", child])
        wall = time.perf_counter() - start
        assert status == 0, output
        measured = float(next(line for line in output.splitlines() if line.startswith("MEASURE")).split()[1])
        results["python"].append((measured, wall, rss))
        log = os.path.join(work, f"analyze{repeat}.h5")
        start = time.perf_counter()
        status, output, rss = run_child([os.path.join(a.bin, "coupling-analyze"), "--hf", directory, "--probe-ids",
                                         ids, "--log", log, "--threads", str(a.threads)])
        wall = time.perf_counter() - start
        assert status == 0, output
        import h5py

        with h5py.File(log) as f:
            measured = float(f["measurement/measure_seconds"][0])
        results["analyze"].append((measured, wall, rss))
    median = {side: [statistics.median(r[i] for r in rows) for i in range(3)] for side, rows in results.items()}
    print(f"GPT-2-small shape, 8 probes x 128 tokens, last token, {a.threads} threads, median of {a.repeats} "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    print(f"{'side':8} {'measure s':>10} {'process s':>10} {'max RSS MiB':>12}")
    for side, (measured, wall, rss) in median.items():
        print(f"{side:8} {measured:10.2f} {wall:10.2f} {rss:12.0f}")
    ratios = [p / q for p, q in zip(median["python"], median["analyze"])]
    print(f"{'ratio':8} {ratios[0]:10.3f} {ratios[1]:10.3f} {ratios[2]:12.3f}   (python / analyze)")
    if a.json:
        append_rows(a.json, [{"benchmark": "python_measure", "side": side, "threads": a.threads,
                              "measure_seconds": m, "process_seconds": w, "max_rss_mib": r,
                              "repeats": a.repeats} for side, (m, w, r) in median.items()])


if __name__ == "__main__":
    main()
