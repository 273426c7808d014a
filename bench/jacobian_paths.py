"""The two Jacobian paths side by side (docs/performance.md section 10): coupling-analyze --hf end
to end on random-weight Hugging Face directories of named shapes (scripts/make_hf_shape.py,
BF16), one probe of 128 seeded token ids, last token, for each setting:
  materialised       --jacobian materialised (K 10,30,50; every block pair)
  matrix-free        --jacobian matrix-free  (K 10,30,50; every block pair)
  materialised-band  --jacobian materialised --k 10 --depth-band 1   (only with --band-reference)
  matrix-free-band   --jacobian matrix-free  --k 10 --depth-band 1   (adjacent coupling only)
  exact              --jacobian materialised --spectrum exact        (only with --exact)
with the GEMM bound of materialising (2 d x block parameters flops a block at the sgemm(1024)
rate measured just before), seconds per block and per probe, peak RSS (wait4), the path the log
records, and the accuracy of each setting: max |delta m_K| over every depth-coupling entry and
max relative |delta s_k| against the exact setting when it ran (else against materialised, for
the settings with its K grid; the band settings against each other).
With --paper, coupling-bench --hf times the paper's algorithm on the middle block (a few rows,
scaled to d) and prints it.

    /usr/bin/python3 bench/jacobian_paths.py --bin build/bin llama-3-8b:4 --exact \\
        --scratch /var/tmp/shapes --json bench/results.json
    /usr/bin/python3 bench/jacobian_paths.py --bin build/bin gpt2-small pythia-1.4b llama-3-8b --paper \\
        --scratch /var/tmp/shapes --json bench/results.json
A shape is NAME or NAME:LAYERS (the depth cut), or the directory of a real model (with
--probe-ids; it is never removed). The shapes' directories are written into --scratch with the
venv's transformers and removed after their rows (--keep keeps them).
    /usr/bin/python3 bench/jacobian_paths.py --bin build/bin /var/tmp/minilm --probe-ids IDS \
        --tokens 13 --exact --band-reference --scratch /var/tmp/shapes   # all-MiniLM-L6-v2
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_streaming import (  # noqa: E402
    append_rows, block_parameters, make_shape, run_child, sgemm_gflops, shape_arguments)

SETTINGS = {
    "materialised": ["--jacobian", "materialised"],
    "matrix-free": ["--jacobian", "matrix-free"],
    "materialised-band": ["--jacobian", "materialised", "--k", "10", "--depth-band", "1"],
    "matrix-free-band": ["--jacobian", "matrix-free", "--k", "10", "--depth-band", "1"],
    "exact": ["--jacobian", "materialised", "--spectrum", "exact"],
}


def read_log(path):
    with h5py.File(path, "r") as f:
        m = f["measurement"]
        return {"path": m.attrs["jacobian_path"], "k": list(m["k"][:]), "depth": m["depth_coupling"][0],
                "s": m["singular_values"][0]}


def errors(log, reference):
    """max |delta m_K| over the K both hold and the entries both define, and max relative |delta s_k|."""
    ks = [k for k in log["k"] if k in reference["k"]]
    a = log["depth"][:, :, :, :, [log["k"].index(k) for k in ks]]
    b = reference["depth"][:, :, :, :, [reference["k"].index(k) for k in ks]]
    both = np.isfinite(a) & np.isfinite(b)
    rank = min(log["s"].shape[-1], reference["s"].shape[-1])
    s, t = log["s"][..., :rank], reference["s"][..., :rank]
    return float(np.abs(a - b)[both].max()), float((np.abs(s - t) / np.abs(t)).max())


def main():
    parser = shape_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--json-out", help="write the rows to this new JSON file")
    parser.add_argument("--device", default="cpu", help="where coupling-analyze measures (cpu, cuda)")
    parser.add_argument("--exact", action="store_true", help="also the exact-spectrum reference")
    parser.add_argument("--band-reference", action="store_true", help="also materialised-band")
    parser.add_argument("--paper", action="store_true", help="also the paper's algorithm (coupling-bench --hf)")
    parser.add_argument("--probe-ids", help="probes of a model directory given as a shape (default: 128 seeded ids)")
    parser.add_argument("--tokens", default="last", help="measured tokens, passed on to coupling-analyze")
    parser.add_argument("--only", help="these settings only (comma list; ratios need materialised)")
    parser.add_argument("--threads", type=int, default=0, help="coupling-analyze --threads (0 = one per core)")
    args = parser.parse_args()
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    settings = ["materialised", "matrix-free", "matrix-free-band"]
    if args.band_reference:
        settings.insert(2, "materialised-band")
    if args.exact:
        settings.insert(0, "exact")
    if args.only:
        settings = [s for s in settings if s in args.only.split(",")]
    rows = []
    print(f"jacobian_paths: LibTorch {torch.__version__}, {threads} threads, device {args.device}")
    print(f"{'shape':<14} {'setting':<18} {'path':<12} {'s/probe':>8} {'s/block':>8} {'x mat.':>7} {'x bound':>8} "
          f"{'peak MiB':>9} {'max|dm_K|':>10} {'max rel ds':>10}  against")
    for spec in args.shapes:
        given = os.path.isdir(spec)  # a model directory of the user's, kept, with --probe-ids
        directory = spec if given else make_shape(spec, args.scratch, args.venv_python)
        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        d = config.get("hidden_size", config.get("n_embd"))
        blocks = config.get("num_hidden_layers", config.get("n_layer"))
        ids = os.path.join(args.scratch, "ids.txt")
        if given and args.probe_ids:
            ids = args.probe_ids
        else:
            rng = random.Random(1)
            with open(ids, "w") as f:
                f.write(" ".join(str(rng.randrange(config["vocab_size"])) for _ in range(128)) + "\n")
        if args.paper:
            status, output, _ = run_child([os.path.join(args.bin, "coupling-bench"), "--hf", directory, "--repeats", "1",
                                           "--device", args.device, "--json", os.path.join(args.scratch, "paper.json")])
            paper = re.search(r"^\s+paper\s+([0-9.]+)", output, re.M)
            print(f"{spec:<14} {'paper (scaled)':<18} {'':<12} {'':>8} "
                  f"{float(paper.group(1)) if paper else float('nan'):>8.2f}   (middle block, coupling-bench --hf)")
            rows.append({"case": "jacobian_paths", "shape": spec, "setting": "paper", "d_model": d, "blocks": blocks,
                         "seconds_per_block": float(paper.group(1)) if paper else None})
        rate = sgemm_gflops(1024)
        bound = blocks * 2 * d * block_parameters(directory) / (rate * 1e9)
        logs, seconds_of = {}, {}
        for setting in settings:
            log = os.path.join(args.scratch, f"{setting}.h5")
            if os.path.exists(log):
                os.remove(log)
            start = time.perf_counter()
            status, output, peak = run_child([os.path.join(args.bin, "coupling-analyze"), "--hf", directory,
                                              "--probe-ids", ids, "--log", log, "--device", args.device,
                                              "--threads", str(args.threads),
                                              "--tokens", args.tokens, *SETTINGS[setting]])
            seconds = time.perf_counter() - start
            if status != 0:
                sys.exit(f"jacobian_paths: coupling-analyze failed on {spec}, {setting} (status {status}):\n{output}")
            logs[setting], seconds_of[setting] = read_log(log), seconds
            parts = re.search(r"forward ([0-9.]+), Jacobians ([0-9.]+), spectra ([0-9.]+), coupling ([0-9.]+)", output)
            phases = dict(zip(("forward", "jacobians", "spectra", "coupling"), map(float, parts.groups()))) if parts else {}
            os.remove(log)
            reference = ("exact" if "exact" in logs and setting != "exact"
                         else "materialised-band" if setting == "matrix-free-band" and "materialised-band" in logs
                         else "materialised" if setting == "matrix-free" else None)
            dm, ds = errors(logs[setting], logs[reference]) if reference else (0.0, 0.0)
            ratio = seconds / seconds_of["materialised"] if "materialised" in seconds_of else float("nan")
            row = {"case": "jacobian_paths", "shape": spec, "setting": setting, "path": logs[setting]["path"],
                   "d_model": d, "blocks": blocks, "probes": 1, "tokens": 128, "libtorch": torch.__version__,
                   "device": args.device,
                   "threads": threads, "sgemm_gflops": rate, "seconds": seconds, "seconds_per_block": seconds / blocks,
                   "ratio_to_materialised": ratio, "ratio_to_bound": seconds / bound, "peak_rss_mib": peak,
                   "max_abs_delta_m": dm, "max_rel_delta_s": ds, "accuracy_against": reference,
                   "phase_seconds": phases}
            rows.append(row)
            print(f"{spec:<14} {setting:<18} {row['path']:<12} {seconds:>8.1f} {seconds / blocks:>8.2f} {ratio:>7.3f} "
                  f"{seconds / bound:>8.3f} {peak:>9.0f} {dm:>10.2e} {ds:>10.2e}  {reference or '-'}  "
                  f"({', '.join(f'{k} {v:.1f}' for k, v in phases.items())})", flush=True)
        if not args.keep and not given:
            shutil.rmtree(directory)
    if args.json:
        append_rows(args.json, rows)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
