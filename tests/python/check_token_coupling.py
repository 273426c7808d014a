#!/usr/bin/python3
"""Brute-force check of a coupling log's token coupling (docs/metrics.md section 3) on the bundled
GPT, re-implemented independently of the C++ in gpt_reference.py.

Usage: check_token_coupling.py RUN_DIR LOG.h5 --heads H [--step S] [--depth]
Loads RUN_DIR/checkpoints/step_S/model.safetensors, the probes (/probes), the
measured tokens (/measurement/token) and the K grid (/measurement/k) of LOG.h5 and the log's row
with /measurement/step == S (default 0). For every probe p, block l and measured token t it computes
J^l_tt = d f^l(X^{l-1})_t / d x^{l-1}_t with torch.autograd.functional.jacobian in float64, its full
SVD with torch.linalg.svd, and m_K for every K, both orientations (ujv: M = U_2K^T J_1 V_2K,
vju: M = V_2K^T J_1 U_2K) and both normalisations (norm: ||S_1K||_F, trace: trace S_1K):
m_K = || |M| - S_1K ||_F / normaliser. It compares every entry of token_coupling and
token_mean_offdiag(_avg) at that step, and block_token_coupling and block_token_mean_offdiag(_avg)
when the log holds them; with --depth also depth_coupling and depth_mean_offdiag (which schema-1
logs hold too: the self-check of this script against a log without token coupling).
Prints the max abs difference per dataset. Exits 0 when every entry is within its tolerance (see
TOLERANCE below), 1 otherwise, and 2 (one line) when the log has no token_coupling and no --depth.
The tolerance assumes exact spectra (--spectrum exact, or a randomized one whose K_max + oversample
test vectors span R^d); it warns if not.
"""
import argparse
import os
import re
import sys

import h5py
import numpy as np
import torch

import coupling_path  # noqa: F401  (python/ on sys.path)
from coupling import safetensors as coupling_safetensors
from gpt_reference import num_layers, residual_branch, residual_states

# TOLERANCE. The log's m_K come from float32 Jacobians (fp32 forward to X^{l-1}, fp32 backward
# through the block; unit roundoff u = 2^-24 = 6e-8) and an exact SVD (fp32 or fp64, engine_config's
# `precision`), with float64 coupling GEMMs. The reference here is float64 throughout (own error
# ~1e-13), so the difference is the C++'s rounding, and it is first order: dm = <grad m, dJ>.
#  * The size of dJ is measured, not guessed: eta_32 = max ||J_32 - J_64||_F / ||J_64||_F over all
#    Jacobians, J_32 being this reference run in float32 (the C++'s precision, another operation
#    order). On the schema-1 fixture it is 2.5e-7 (~4 u); on random GPTs, d 16..64, 4e-7..3e-6.
#  * The gain grad m is where a fixed bound fails: Wedin's theorem gives |dm| <= 2 sqrt(2K) eta
#    ||J_2||_F / (smallest gap between J_2's top K+1 singular values) + (2 + sqrt(K) m) eta
#    ||J_1||_F / ||S_1K||_F, and with realistic gaps that is 1e-2..0.4 for K 4..48 at d 64 while
#    the true error is ~1e-6 (rounding errors are not aligned with the worst direction): useless.
#    So it is measured too, by running the C++'s arithmetic on this reference: m_K from the float32
#    Jacobians with a float32 SVD and float64 products, and from 3 seeded random perturbations
#    J_64 + E (||E||_F = eta_32 ||J_64||_F, rounded to float32, float32 SVD). The largest |m - m_64|
#    of these 4 over a dataset's entries (each summary gets its own, from the same 4 runs) is that
#    dataset's rounding scale e; observed e: 1e-6..1.4e-5 (fixture and random GPTs, K up to 48).
#  * The C++ is one more draw of the same rounding process, so its error is of order e; the
#    tolerance is max(10 e, 1e-5). 10x covers a draw several times larger than the largest of our
#    4 (and the float32 SVD's backward error, p(d) u ||J||, which our float32 SVDs share);
#    1e-5 (~170 u, twice metrics.md's measured C++ vs Python agreement 4.2e-6) is a floor for
#    well-conditioned entries, whose error is a few u times the K^2 terms summed in ||.||_F.
#  * On the fixture (schema-1 log, depth_coupling at steps 2 and 4) the C++ differs by <= 7.2e-7
#    against e = 9.5e-7, tolerance 1e-5. Tolerances are 1e-5..1.5e-4, three or more orders below
#    the 0.1..1 differences a wrong orientation, normaliser, axis order or index layout makes
#    (checked by mutating a synthetic log).
TOLERANCE_SAFETY = 10.0
TOLERANCE_FLOOR = 1e-5
PERTURBATION_SAMPLES = 3


def token_jacobian(p, l, x, t, heads):
    """J_tt of block index l (0-based) at block input x [T, d]: d branch(x)_t / d x_t, rows = outputs."""
    def f(xt):
        return residual_branch(p, l, torch.cat([x[:t], xt.unsqueeze(0), x[t + 1:]]).unsqueeze(0), heads)[0, t]
    return torch.autograd.functional.jacobian(f, x[t])


def jacobians(p, probes, tokens, heads):
    """[P, L, n, d, d]: J^l_tt for every probe, block and measured token, in p's dtype."""
    L, d = num_layers(p), p["wte.weight"].shape[1]
    out = torch.empty(probes.shape[0], L, len(tokens), d, d, dtype=p["wte.weight"].dtype)
    for b in range(probes.shape[0]):
        states = residual_states(p, probes[b:b + 1], heads)
        for l in range(L):
            x = states[l][0].detach()
            for i, t in enumerate(tokens):
                out[b, l, i] = token_jacobian(p, l, x, t, heads)
    return out


def coupling_matrix(jac, ks, svd_dtype):
    """m [2, 2, nK, N, N] (orientation, normalisation, K, diagonalised i, basis j) of N Jacobians
    [N, d, d], with the SVD in svd_dtype and the products in float64."""
    u, s, vh = (t.double() for t in torch.linalg.svd(jac.to(svd_dtype)))
    v = vh.transpose(-2, -1)
    jac = jac.double()
    n = jac.shape[0]
    m = torch.empty(2, 2, len(ks), n, n, dtype=torch.float64)
    for ki, k in enumerate(ks):
        s1 = s[:, :k]
        for o, (left, right) in enumerate(((u, v), (v, u))):  # ujv: U_2K^T J_1 V_2K, vju: V_2K^T J_1 U_2K
            for j in range(n):
                mm = (left[j, :, :k].T @ jac @ right[j, :, :k]).abs()  # [i, K, K]
                num = (mm - torch.diag_embed(s1)).flatten(1).norm(dim=1)
                m[o, 0, ki, :, j] = num / s1.norm(dim=1)  # norm
                m[o, 1, ki, :, j] = num / s1.sum(dim=1)   # trace
    return m


def mean_offdiag(a):
    """Mean over i != j of the last two axes."""
    off = ~np.eye(a.shape[-1], dtype=bool)
    return a[..., off].mean(axis=-1)


def log_datasets(jac, ks, svd_dtype):
    """The log's coupling datasets at one step, computed from jac [P, L, n, d, d]."""
    P, L, n, d = jac.shape[:4]
    # every (block, token) Jacobian of a probe, index l n + i: the token and depth matrices are its blocks
    block = np.stack([coupling_matrix(jac[b].reshape(L * n, d, d), ks, svd_dtype).numpy() for b in range(P)])
    out = {"depth_coupling": np.stack([block[..., i::n, i::n] for i in range(n)], 1)}  # [P, n, 2, 2, nK, L, L]
    if n >= 2:
        out["token_coupling"] = np.stack([block[..., l * n:(l + 1) * n, l * n:(l + 1) * n] for l in range(L)], 1)
        out["block_token_coupling"] = block  # [P, 2, 2, nK, Ln, Ln]
    for name in list(out):
        prefix = name[:-len("coupling")]
        out[prefix + "mean_offdiag"] = mean_offdiag(out[name])
        # averaged over probes and layers (token), probes and tokens (depth), probes (block_token)
        out[prefix + "mean_offdiag_avg"] = out[prefix + "mean_offdiag"].mean(axis=(0,) if name == "block_token_coupling"
                                                                         else (0, 1))
    return out


def compare(name, got, want, tol):
    """Prints the max abs difference of got (log) and want (reference); True when all within tol."""
    both_nan = np.isnan(got) & np.isnan(want)
    diff = np.where(both_nan, 0.0, np.abs(got - want))
    bad = ~(diff <= tol)  # a NaN on one side only is bad
    print(f"check_token_coupling: {name} {tuple(got.shape)}: max |diff| {np.nanmax(diff):.3e}, "
          f"tolerance {tol:.1e}" + (f", {int(bad.sum())} entries OUT OF TOLERANCE" if bad.any() else ""))
    return not bad.any()


def spectrum_warning(engine_config, ks, d):
    """None when the log's spectra are exact up to rounding: exact, or randomized (auto picks it when
    4 K_max <= d) with K_max + oversample >= d test vectors, whose range is then all of R^d."""
    method = re.search(r"spectrum=(\w+)", engine_config)
    method = method.group(1) if method else "unknown"
    oversample = re.search(r"oversample=(\d+)", engine_config)
    oversample = int(oversample.group(1)) if oversample else 0
    randomized = method == "randomized" or (method == "auto" and 4 * max(ks) <= d)
    if method in ("exact", "auto", "randomized") and (not randomized or max(ks) + oversample >= d):
        return None
    return (f"check_token_coupling: warning: the log's spectrum is '{method}' (d = {d}, K_max = {max(ks)}, "
            f"oversample {oversample}): randomized spectra are approximate and the tolerance assumes exact "
            "ones; use --spectrum exact")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("log")
    parser.add_argument("--heads", type=int, required=True)
    parser.add_argument("--step", type=int, default=0)
    parser.add_argument("--depth", action="store_true", help="also check depth_coupling (schema-1 logs too)")
    args = parser.parse_args()
    with h5py.File(args.log, "r", swmr=True, libver="latest") as f:
        m = f["measurement"]
        if "token_coupling" not in m and not args.depth:
            print(f"check_token_coupling: {args.log} has no token_coupling (schema "
                  f"{f.attrs.get('schema_version')}, tokens {[int(t) for t in m['token'][()]] if 'token' in m else []})")
            sys.exit(2)
        rows = np.flatnonzero(m["step"][()] == args.step)
        if len(rows) != 1:
            sys.exit(f"check_token_coupling: the log has {len(rows)} rows with step {args.step}")
        row = int(rows[0])
        wanted = ["token_coupling", "token_mean_offdiag", "token_mean_offdiag_avg", "block_token_coupling",
                  "block_token_mean_offdiag", "block_token_mean_offdiag_avg"]
        if args.depth:
            wanted += ["depth_coupling", "depth_mean_offdiag", "depth_mean_offdiag_avg"]
        logged = {name: m[name][row] for name in wanted if name in m}
        probes = torch.from_numpy(f["probes"][()])
        tokens = [int(t) for t in m["token"][()]]
        ks = [int(k) for k in m["k"][()]]
        engine_config = f.attrs.get("engine_config", "")
        model_config = f.attrs.get("model_config", "")
    heads_in_log = re.search(r"\bheads=(\d+)", model_config)
    if heads_in_log and int(heads_in_log.group(1)) != args.heads:
        sys.exit(f"check_token_coupling: --heads {args.heads} but the log's model_config says {model_config!r}")
    path = os.path.join(args.run_dir, "checkpoints", f"step_{args.step}", "model.safetensors")
    if not os.path.isfile(path):
        sys.exit(f"check_token_coupling: no checkpoint weights {path}")
    weights = coupling_safetensors.load_torch(path)
    T, d = probes.shape[1], weights["wte.weight"].shape[1]
    tokens = [t + T if t < 0 else t for t in tokens]
    warning = spectrum_warning(engine_config, ks, d)
    if warning:
        print(warning)

    jac = jacobians({k: w.double() for k, w in weights.items()}, probes, tokens, args.heads)
    jac32 = jacobians({k: w.float() for k, w in weights.items()}, probes, tokens, args.heads)
    eta_32 = ((jac32.double() - jac).flatten(3).norm(dim=3) / jac.flatten(3).norm(dim=3)).max().item()
    ref = log_datasets(jac, ks, torch.float64)
    # the C++'s arithmetic on this reference (see TOLERANCE)
    runs = [log_datasets(jac32, ks, torch.float32)]
    generator = torch.Generator().manual_seed(0)
    for _ in range(PERTURBATION_SAMPLES):
        e = torch.randn(jac.shape, generator=generator, dtype=torch.float64)
        e *= (eta_32 * jac.flatten(3).norm(dim=3) / e.flatten(3).norm(dim=3))[..., None, None]
        runs.append(log_datasets((jac + e).float(), ks, torch.float32))
    scale = {name: max(np.nanmax(np.abs(run[name] - ref[name])) for run in runs) for name in ref}
    tol = {name: max(TOLERANCE_SAFETY * e, TOLERANCE_FLOOR) for name, e in scale.items()}
    print(f"check_token_coupling: step {args.step}, {jac.shape[0]} probes, {jac.shape[1]} blocks, tokens {tokens}, "
          f"K {ks}, d {d}; float32 Jacobians differ by {eta_32:.1e} relative, float32 rounding moves m_K by up to "
          f"{max(scale.values()):.1e}")

    ok = True
    if "token_coupling" not in logged:  # only with --depth
        print("check_token_coupling: the log has no token_coupling: checking depth coupling only")
        wanted = [name for name in wanted if name.startswith("depth")]
    for name in wanted:
        if name not in logged:
            if not name.startswith("block_token"):
                print(f"check_token_coupling: the log has no {name}")
                ok = False
            continue
        if name not in ref or logged[name].shape != ref[name].shape:
            print(f"check_token_coupling: {name} has shape {logged[name].shape}, expected "
                  f"{ref[name].shape if name in ref else 'none (fewer than 2 tokens)'}")
            ok = False
            continue
        ok = compare(name, logged[name], ref[name], tol[name]) and ok
    print(f"check_token_coupling: {'ok' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
