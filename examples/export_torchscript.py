"""A small PyTorch GPT trained briefly and exported as TorchScript checkpoints that
coupling-analyze can measure (docs/analysis.md).

The convention coupling-analyze checks (coupling/models/torchscript_model.h):
  embed(x) -> X^0 [B, T, d]   an exported method
  blocks                      an nn.ModuleList; blocks[l] maps X^l to X^(l+1), skip included
  causal                      a bool attribute

Usage: /usr/bin/python3 examples/export_torchscript.py TEXT OUT_DIR [--steps 200] [--save-every 100]
           [--d 64] [--layers 2] [--context 32] [--broken]
Writes OUT_DIR/models/step_<N>.pt for N = 0, save-every, ..., steps, and OUT_DIR/probes.pt (8
windows of the text's last 10%, int64 [8, context]). --broken also writes modules that break the convention
(OUT_DIR/broken/no_embed.pt, no_causal.pt) for the error tests.
"""
import argparse
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q = q.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        k = k.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        v = v.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(a)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGpt(nn.Module):
    def __init__(self, d: int, layers: int, context: int):
        super().__init__()
        self.causal = True
        self.wte = nn.Embedding(256, d)
        self.wpe = nn.Embedding(context, d)
        self.blocks = nn.ModuleList([Block(d, 4) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)

    @torch.jit.export
    def embed(self, idx):
        positions = torch.arange(idx.size(1), device=idx.device)
        return self.wte(idx) + self.wpe(positions)

    def forward(self, idx):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.t()


class NoEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.causal = True
        self.blocks = nn.ModuleList([Block(16, 4)])

    def forward(self, x):
        return self.blocks[0](x)


class NoCausal(TinyGpt):
    def __init__(self):
        super().__init__(16, 1, 8)
        del self.causal


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("text")
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--context", type=int, default=32)
    parser.add_argument("--broken", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    data = torch.tensor(list(open(args.text, "rb").read()), dtype=torch.long)
    split = int(0.9 * len(data))
    os.makedirs(os.path.join(args.out, "models"), exist_ok=True)
    probe_starts = torch.linspace(split, len(data) - args.context - 1, 8).long()
    torch.save(torch.stack([data[s:s + args.context] for s in probe_starts]), os.path.join(args.out, "probes.pt"))

    model = TinyGpt(args.d, args.layers, args.context)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(args.steps + 1):
        if step % args.save_every == 0 or step == args.steps:
            torch.jit.script(model).save(os.path.join(args.out, "models", f"step_{step}.pt"))
        if step == args.steps:
            break
        starts = torch.randint(0, split - args.context - 1, (16,))
        x = torch.stack([data[s:s + args.context] for s in starts])
        y = torch.stack([data[s + 1:s + args.context + 1] for s in starts])
        loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"export_torchscript: {args.steps} steps, final batch loss {loss.item():.3f}, models in {args.out}")

    if args.broken:
        os.makedirs(os.path.join(args.out, "broken"), exist_ok=True)
        torch.jit.script(NoEmbed()).save(os.path.join(args.out, "broken", "no_embed.pt"))
        torch.jit.script(NoCausal()).save(os.path.join(args.out, "broken", "no_causal.pt"))


if __name__ == "__main__":
    main()
