"""The memory estimate against the peak it estimates: each case runs a tool end to end, reads the
estimate it prints before measuring ("peak memory estimate: X GiB") and compares it with the
child's max RSS (wait4, file-backed pages included), side by side in one run. Cases:
  hf:SHAPE[:LAYERS]:TOKENS   coupling-analyze --hf on a random-weight directory of that shape
                             (scripts/make_hf_shape.py), one probe of 128 seeded ids, --tokens
                             TOKENS (last, all, ...), default K and spectra
  gpt:D:LAYERS:BATCH:TOKENS  coupling-train gpt for 2 steps on the KJV text, 8 probes of 128 bytes
Prints a table and appends its rows to a JSON list (bench/results.json's format).
    /usr/bin/python3 bench/memory_estimate.py hf:pythia-160m:last hf:pythia-160m:all \
        hf:pythia-1.4b:last gpt:256:4:32:last --scratch /var/tmp/shapes --json bench/results.json
docs/performance.md section 13 has the results.
"""
import os
import platform
import random
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_streaming import ROOT, append_rows, make_shape, run_child, shape_arguments  # noqa: E402

KJV = os.path.join(ROOT, "data", "kjv.txt")  # scripts/prepare_data.sh


def command(case, bin_dir, scratch, venv_python, work):
    """The tool's command line for `case`, and a short description."""
    kind, _, spec = case.partition(":")
    parts = spec.split(":")
    if kind == "hf":
        shape = ":".join(parts[:-1])
        directory = make_shape(shape, scratch, venv_python)
        ids = os.path.join(work, "ids.txt")
        rng = random.Random(1)
        with open(ids, "w") as f:
            f.write(" ".join(str(rng.randrange(1000)) for _ in range(128)) + "\n")
        return [os.path.join(bin_dir, "coupling-analyze"), "--hf", directory, "--probe-ids", ids, "--tokens",
                parts[-1], "--log", os.path.join(work, "analysis.h5")]
    if kind == "gpt":
        d, layers, batch, tokens = parts
        return [os.path.join(bin_dir, "coupling-train"), "gpt", "--data", KJV, "--d-model", d, "--layers", layers,
                "--heads", str(max(1, int(d) // 64)), "--context", "128", "--batch", batch, "--steps", "2",
                "--probes", "8", "--tokens", tokens, "--eval-windows", "8", "--out", os.path.join(work, "run")]
    sys.exit(f"memory_estimate: unknown case '{case}' (hf:SHAPE:TOKENS or gpt:D:LAYERS:BATCH:TOKENS)")


def main():
    parser = shape_arguments(__doc__.split("\n\n")[0])
    args = parser.parse_args()
    rows = []
    print(f"memory_estimate: {os.cpu_count()} threads, {platform.processor() or platform.machine()}")
    print(f"{'case':<28} {'estimate MiB':>12} {'peak MiB':>9} {'estimate/peak':>14}")
    for case in args.shapes:
        with tempfile.TemporaryDirectory() as work:
            status, output, peak = run_child(command(case, args.bin, args.scratch, args.venv_python, work))
        if status != 0:
            sys.exit(f"memory_estimate: {case} failed (status {status}):\n{output}")
        estimate = re.search(r"peak memory estimate:? ([0-9.]+) GiB \(MiB: ([^)]*)\)", output)
        if not estimate:
            sys.exit(f"memory_estimate: {case} printed no estimate:\n{output}")
        estimate_mib = float(estimate.group(1)) * 1024
        rows.append({"case": "memory_estimate", "run": case, "estimate_mib": estimate_mib,
                     "estimate_parts_mib": estimate.group(2), "peak_rss_mib": peak,
                     "ratio": estimate_mib / peak, "threads": os.cpu_count()})
        print(f"{case:<28} {estimate_mib:>12.0f} {peak:>9.0f} {estimate_mib / peak:>14.2f}   ({estimate.group(2)})",
              flush=True)
    if args.json:
        append_rows(args.json, rows)


if __name__ == "__main__":
    main()
