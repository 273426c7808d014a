"""Independent re-implementation of the bundled GPT from docs/architecture.md.

Usage: gpt_reference.py DIR --heads H
DIR holds weights.pt (name -> tensor dict written by the C++ trainer), tokens.pt ([B, T] int64)
and logits.pt (the C++ model's logits). Exits 0 when the logits agree to 1e-4 (relative to
their scale), 1 otherwise. Uses only torch.nn.functional: no code is shared with the C++ side.
"""
import argparse
import math
import sys

import torch
import torch.nn.functional as F


def layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def attention(x, p, prefix, heads):
    B, T, d = x.shape
    hd = d // heads
    qkv = x @ p[prefix + "qkv.weight"].T + p[prefix + "qkv.bias"]
    q, k, v = qkv.split(d, dim=-1)
    q, k, v = (t.view(B, T, heads, hd).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(hd)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(mask, float("-inf"))
    y = scores.softmax(-1) @ v
    y = y.transpose(1, 2).reshape(B, T, d)
    return y @ p[prefix + "proj.weight"].T + p[prefix + "proj.bias"]


def mlp(x, p, prefix):
    h = F.gelu(x @ p[prefix + "fc.weight"].T + p[prefix + "fc.bias"])  # exact erf GELU
    return h @ p[prefix + "proj.weight"].T + p[prefix + "proj.bias"]


def gpt_logits(p, idx, heads):
    T = idx.shape[1]
    x = p["wte.weight"][idx] + p["wpe.weight"][:T]
    layers = 1 + max(int(k.split(".")[1]) for k in p if k.startswith("blocks."))
    for l in range(layers):
        b = f"blocks.{l}."
        a = attention(layer_norm(x, p[b + "ln1.weight"], p[b + "ln1.bias"]), p, b + "attn.", heads)
        m = mlp(layer_norm(x + a, p[b + "ln2.weight"], p[b + "ln2.bias"]), p, b + "mlp.")
        x = x + a + m
    return layer_norm(x, p["ln_f.weight"], p["ln_f.bias"]) @ p["wte.weight"].T


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--heads", type=int, required=True)
    args = parser.parse_args()
    weights = torch.load(f"{args.dir}/weights.pt")
    idx = torch.load(f"{args.dir}/tokens.pt")
    expected = torch.load(f"{args.dir}/logits.pt")
    with torch.no_grad():
        got = gpt_logits(weights, idx, args.heads)
    err = (got - expected).abs().max().item() / expected.abs().max().item()
    print(f"gpt_reference: max relative logit difference {err:.3e} over {tuple(got.shape)}")
    sys.exit(0 if err < 1e-4 else 1)


if __name__ == "__main__":
    main()
