#!/usr/bin/python3
"""The bundled GPT's training step in PyTorch eager (Debian's python3-torch), for comparison with
the C++ trainer: same model (tests/python/gpt_reference.py, written from docs/architecture.md),
batch 32 x 128, AdamW. Prints step_seconds=<median>.

Usage: bench/pytorch_reference.py [--steps N] [--threads N]
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from gpt_reference import gpt_logits  # noqa: E402


def init_params(d=128, layers=4, context=128, vocab=256):
    g = torch.Generator().manual_seed(0)
    def normal(*shape, std=0.02):
        return (torch.randn(*shape, generator=g) * std).requires_grad_()
    p = {"wte.weight": normal(vocab, d), "wpe.weight": normal(context, d),
         "ln_f.weight": torch.ones(d, requires_grad=True), "ln_f.bias": torch.zeros(d, requires_grad=True)}
    for l in range(layers):
        b = f"blocks.{l}."
        for name in ("ln1", "ln2"):
            p[b + name + ".weight"] = torch.ones(d, requires_grad=True)
            p[b + name + ".bias"] = torch.zeros(d, requires_grad=True)
        for name, (o, i) in {"attn.qkv": (3 * d, d), "attn.proj": (d, d), "mlp.fc": (4 * d, d), "mlp.proj": (d, 4 * d)}.items():
            p[b + name + ".weight"] = normal(o, i)
            p[b + name + ".bias"] = torch.zeros(o, requires_grad=True)
    return p


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = init_params()
    optimizer = torch.optim.AdamW(params.values(), lr=1e-3)
    ids = torch.randint(256, (32, 129), generator=torch.Generator().manual_seed(1))
    inputs, targets = ids[:, :128], ids[:, 1:]
    times = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        logits = gpt_logits(params, inputs, heads=4)
        torch.nn.functional.cross_entropy(logits.reshape(-1, 256), targets.reshape(-1)).backward()
        optimizer.step()
        if step > 0:  # the first step warms up
            times.append(time.perf_counter() - start)
    print(f"step_seconds={statistics.median(times):.6f}")


if __name__ == "__main__":
    main()
