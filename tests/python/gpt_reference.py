"""Independent re-implementation of the bundled GPT (docs/architecture.md) and of the coupling
measurements (docs/metrics.md), for cross-checking the C++ numbers.

Usage: gpt_reference.py DIR --heads H [--coupling]
DIR holds model.safetensors (written by the C++ trainer), tokens.pt ([B, T] int64)
and logits.pt (the C++ model's logits). With --coupling it also holds the C++ measurement of the
last token: depth.pt ([B, L, L] m_K, ujv, norm, K = 4), sigma.pt ([B, L, K]), lss.pt ([B]) and
linearity.pt ([L], layer linearity over every token of every sequence, docs/metrics.md section 4.1).
Exits 0 when everything agrees (logits to 1e-4 relative, measurements to 1e-3, linearity to 1e-5),
1 otherwise. Uses only torch, torch.nn.functional and numpy: no code is shared with the C++ side.
"""
import argparse
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

import coupling_path  # noqa: F401  (python/ on sys.path)
from coupling import safetensors as coupling_safetensors


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


def num_layers(p):
    return 1 + max(int(k.split(".")[1]) for k in p if k.startswith("blocks."))


def residual_branch(p, l, x, heads):
    b = f"blocks.{l}."
    a = attention(layer_norm(x, p[b + "ln1.weight"], p[b + "ln1.bias"]), p, b + "attn.", heads)
    m = mlp(layer_norm(x + a, p[b + "ln2.weight"], p[b + "ln2.bias"]), p, b + "mlp.")
    return a + m


def residual_states(p, idx, heads):
    T = idx.shape[1]
    states = [p["wte.weight"][idx] + p["wpe.weight"][:T]]
    for l in range(num_layers(p)):
        states.append(states[-1] + residual_branch(p, l, states[-1], heads))
    return states


def gpt_logits(p, idx, heads):
    x = residual_states(p, idx, heads)[-1]
    return layer_norm(x, p["ln_f.weight"], p["ln_f.bias"]) @ p["wte.weight"].T


def coupling_ujv_norm(j1, j2, k):
    """m_K(J1, J2) = || |U2^T J1 V2| - S1 ||_F / ||S1||_F with top-K factors, float64."""
    u2, _, v2h = torch.linalg.svd(j2)
    s1 = torch.linalg.svdvals(j1)[:k]
    m = (u2[:, :k].T @ j1 @ v2h[:k].T).abs()
    return ((m - torch.diag(s1)).norm() / s1.norm()).item()


def check_coupling(args, weights, idx):
    k = 4
    depth = torch.load(f"{args.dir}/depth.pt")
    sigma = torch.load(f"{args.dir}/sigma.pt")
    lss = torch.load(f"{args.dir}/lss.pt")
    p64 = {name: t.double() for name, t in weights.items()}
    states = residual_states(p64, idx, args.heads)
    L, T = num_layers(p64), idx.shape[1]
    worst = 0.0
    for b in range(idx.shape[0]):
        jac = []
        for l in range(L):
            f = lambda x: residual_branch(p64, l, x.unsqueeze(0), args.heads)[0, T - 1]
            jac.append(torch.autograd.functional.jacobian(f, states[l][b].detach())[:, T - 1, :])
        for i in range(L):
            worst = max(worst, (torch.linalg.svdvals(jac[i])[:k] - sigma[b, i].double()).abs().max().item()
                        / sigma[b, i, 0].item())
            for j in range(L):
                worst = max(worst, abs(coupling_ujv_norm(jac[i], jac[j], k) - depth[b, i, j].item()))
        path = torch.stack([s[b, T - 1] for s in states])
        steps = path[1:] - path[:-1]
        unit = steps / steps.norm(dim=1, keepdim=True)
        worst = max(worst, abs(L / unit.sum(0).norm().item() - lss[b].item()))
    print(f"gpt_reference: worst coupling/sigma/LSS difference {worst:.3e}")
    linearity = torch.load(f"{args.dir}/linearity.pt").numpy()
    expected = [layer_linearity(states[l].reshape(-1, states[l].shape[-1]).detach().numpy(),
                                states[l + 1].reshape(-1, states[l].shape[-1]).detach().numpy()) for l in range(L)]
    linearity_error = float(np.max(np.abs(linearity - np.array(expected))))
    print(f"gpt_reference: worst layer-linearity difference {linearity_error:.3e} (values {np.round(expected, 5)})")
    return worst < 1e-3 and linearity_error < 1e-5


def layer_linearity(x, y):
    """Razzhigaev et al.: centre, scale to unit Frobenius norm, 1 - the least-squares residual (numpy, float64)."""
    def unit(a):
        a = a - a.mean(axis=0)
        return a / np.linalg.norm(a)

    x, y = unit(x), unit(y)
    a = np.linalg.lstsq(x, y, rcond=None)[0]
    return 1 - np.linalg.norm(x @ a - y) ** 2


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--heads", type=int, required=True)
    parser.add_argument("--coupling", action="store_true")
    args = parser.parse_args()
    weights = coupling_safetensors.load_torch(f"{args.dir}/model.safetensors")
    idx = torch.load(f"{args.dir}/tokens.pt")
    expected = torch.load(f"{args.dir}/logits.pt")
    with torch.no_grad():
        got = gpt_logits(weights, idx, args.heads)
    err = (got - expected).abs().max().item() / expected.abs().max().item()
    print(f"gpt_reference: max relative logit difference {err:.3e} over {tuple(got.shape)}")
    ok = err < 1e-4
    if args.coupling:
        ok = check_coupling(args, weights, idx) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
