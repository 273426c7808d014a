"""coupling.measure on live models: every family equals coupling-analyze --hf on the same weights, the generic
path equals the token-local one, and the model is left as it was found."""
import subprocess

import numpy as np
import pytest
import torch
from conftest import max_differences

import coupling
from coupling.log import open_log
from hf_reference import T, VOCAB, cases, redraw_parameters

# Same float32 arithmetic on the same weights on both sides (see test_trainer.py).
TOLERANCE = 1e-5


def family_model(case):
    name, config_class, model_class, kwargs, seed, _ = case
    torch.manual_seed(seed)
    model = model_class(config_class(**kwargs))
    redraw_parameters(model)
    return model


def probe_ids(count=3):
    return torch.randint(0, VOCAB, (count, T), generator=torch.Generator().manual_seed(7))


@pytest.mark.parametrize("case", cases(), ids=lambda c: c[0])
def test_every_family_equals_coupling_analyze(case, analyze, tmp_path):
    model = family_model(case)
    model.save_pretrained(tmp_path / "model", **case[5])
    ids = probe_ids()
    (tmp_path / "ids.txt").write_text("".join(" ".join(map(str, row.tolist())) + "\n" for row in ids))
    p = subprocess.run([analyze, "--hf", str(tmp_path / "model"), "--probe-ids", str(tmp_path / "ids.txt"), "--log",
                        str(tmp_path / "log.h5"), "--tokens", "all", "--k", "4,8", "--threads", "1"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    reference = open_log(tmp_path / "log.h5").isel(step=0)
    measured = coupling.measure(model, tmp_path / "ids.txt", k=(4, 8), tokens="all")
    reference = reference[[v for v in measured.data_vars]]  # the log's per-step columns are not measurement fields
    differences = max_differences(measured, reference)
    assert differences and max(differences.values()) <= TOLERANCE, differences
    assert measured.attrs["model"] == case[1]().model_type


def gpt2(layers=2, d=32, dropout=0.1):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=d, n_layer=layers, n_head=4,
                                      bos_token_id=1, eos_token_id=2, resid_pdrop=dropout, embd_pdrop=dropout,
                                      attn_pdrop=dropout))


def gpt2_callables(model):
    """GPT-2 through the generic convention: embed(ids) -> X^0, blocks[l](X) -> X^{l+1}."""
    base = model.base_model

    def embed(ids):
        return base.wte(ids) + base.wpe(torch.arange(ids.shape[1]))

    def block(module):
        def run(x):
            out = module(x)
            return out[0] if isinstance(out, tuple) else out
        return run

    return embed, [block(b) for b in base.h]


def test_generic_path_equals_the_token_local_path():
    model = gpt2().eval()
    ids = probe_ids()
    fast = coupling.measure(model, ids, k=(4, 8), tokens="all")
    embed, blocks = gpt2_callables(model)
    with pytest.warns(UserWarning, match="generic autograd path"):
        generic = coupling.measure(model, ids, k=(4, 8), tokens="all", embed=embed, blocks=blocks, causal=True)
    # Two float32 computations of the same Jacobians (transformers' modules under autograd, the C++ model
    # token-local): m_K is a mean of squared cosines of O(1), each off by a few float32 ulps times d.
    differences = max_differences(fast, generic)
    assert max(differences[v] for v in ("depth_mean_offdiag_avg", "depth_coupling", "singular_values")) < 1e-4


def snapshot(model):
    return ({n: m.training for n, m in model.named_modules()},
            {n: (p.requires_grad, None if p.grad is None else p.grad.clone(), p.detach().clone())
             for n, p in model.named_parameters()},
            torch.get_rng_state())


@pytest.mark.parametrize("path", ["token-local", "generic"])
def test_model_is_left_as_found(path):
    model = gpt2().train()
    model.base_model.h[0].eval()
    model.base_model.wpe.weight.requires_grad_(False)
    model(probe_ids()).logits.sum().backward()  # gradients to keep
    extra = dict(zip(("embed", "blocks"), gpt2_callables(model)), causal=True) if path == "generic" else {}
    before = snapshot(model)
    with pytest.warns(UserWarning) if extra else _nothing():
        coupling.measure(model, probe_ids(), k=(4,), **extra)
    after = snapshot(model)
    assert before[0] == after[0]
    for name, (requires_grad, grad, value) in before[1].items():
        requires_grad_after, grad_after, value_after = after[1][name]
        assert requires_grad == requires_grad_after, name
        assert (grad is None and grad_after is None) or torch.equal(grad, grad_after), name
        assert torch.equal(value, value_after), name
    assert torch.equal(before[2], after[2])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_dataset_has_the_logs_names_axes_and_units(trainer_run):
    log = open_log(trainer_run / "coupling.h5")
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(trainer_run / "checkpoint-60")
    measured = coupling.measure(model, trainer_run / "probe_ids.txt")
    at_60 = log.sel(step=60)
    for name, variable in measured.data_vars.items():
        assert variable.dims == at_60[name].dims, name
        assert variable.attrs["units"] == at_60[name].attrs["units"], name
        assert variable.attrs["description"] == at_60[name].attrs["description"], name
        np.testing.assert_allclose(variable.values, at_60[name].values, rtol=0, atol=TOLERANCE, err_msg=name)
    for axis in ("k", "orientation", "normalisation", "token", "layer"):
        assert measured[axis].values.tolist() == log[axis].values.tolist(), axis
