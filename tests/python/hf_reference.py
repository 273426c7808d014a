"""Writes tiny Hugging Face model directories and their reference hidden states and block Jacobians,
computed by `transformers` itself, to check the C++ re-implementation of the transformer blocks.

Usage: hf_reference.py OUT_DIR

Exits 77 (one line) when `import transformers` fails. Written for transformers 5.24 (torch 2.15).
For each case below it writes OUT_DIR/<case>/:
  * the model, random init in float64, saved by `save_pretrained` (F64 safetensors, config.json as
    transformers writes it; `gpt2_sharded` with a small max_shard_size: model.safetensors.index.json
    plus several shards). Every parameter is redrawn after transformers' own init (norm weights
    1 + N(0, 0.2), biases N(0, 0.1), matrices N(0, 1/fan_in), embeddings N(0, 0.5)) so that no
    weight is 0 or 1 and attention is far from uniform: a loader that drops or swaps a tensor fails.
  * reference.safetensors (metadata {"case", "family"}) with
      input_ids        int64   [B=2, T=8]
      states           float64 [L+1, B, T, d]   states[0] = input of layer 0 (after the embeddings;
                       GPT-2: wte + wpe; BERT: after embeddings.LayerNorm), states[l] = output of
                       layer l-1; states[L] is before any final norm.
      jacobian.<l>     float64 [T, d, T, d]     sequence 0 only, J[t2, i, t1, j] =
                       d f_l(X)[t2, i] / d X[t1, j], f_l(x) = layer_l(x) - x at X = states[l][0:1],
                       the layer called with exactly the arguments the model passes it.
      states_fp64, jacobian_fp64.<l>   the same, computed with every float32 cast inside transformers
                       promoted to float64 (see FLOAT32 below); identical to the above for gpt2 and
                       bert, which have no such casts.

FLOAT32. In 5.24, even a float64 model computes parts in float32: LlamaRMSNorm/MistralRMSNorm cast
the input to float32 (`hidden_states.to(torch.float32)`, normalise, cast back, then `weight *`),
eager attention of Llama/Mistral/GPT-NeoX does `softmax(..., dtype=torch.float32).to(query.dtype)`,
and the rotary embedding computes inv_freq (at init), freqs, cos and sin in float32 and casts cos/sin
to float64. So `states`/`jacobian` carry float32 rounding (~1e-7 relative) for neox/llama/mistral.
A C++ port matches them to ~1e-12 only if it makes the same casts with the same ATen ops; a clean
float64 port should be compared with `states_fp64`/`jacobian_fp64`, which this script computes by
running the same transformers code under a TorchFunctionMode that turns every float32 dtype request
(`.float()`, `.to(torch.float32)`, `dtype=torch.float32` in softmax/arange/tensor) into float64 and
by recomputing inv_freq under that mode.

Masks: the model builds the eager additive mask (0 / finfo(float64).min, shape [1, 1, T, T]) and
passes it to each layer as attention_mask; the script records the layer's arguments with a forward
pre-hook (with_kwargs=True) on a forward of input_ids[0:1] (use_cache=False) and reuses them. It
asserts that J[t2, :, t1, :] == 0 exactly where a query may not see a key (causal: t1 > t2;
mistral_window, sliding_window W: also t2 - t1 >= W, i.e. query t sees keys t-W+1..t) and != 0
everywhere else, that the recorded call reproduces states[l+1], and that states match
output_hidden_states (all L+1 for BERT; the first L for the others, whose last entry is after the
final norm, which is checked too).
"""
import inspect
import math
import os
import sys
import time

try:
    import transformers
except ImportError:
    print("transformers is not installed in this Python: skipped")
    sys.exit(77)

import torch
from safetensors.torch import save_file
from torch.overrides import TorchFunctionMode

B, T = 2, 8
VOCAB = 64
MAX_POS = 16


def cases():
    """(name, config class, model class, config kwargs, seed, save_pretrained kwargs)."""
    from transformers import (BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, GPTNeoXConfig,
                              GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig,
                              MistralForCausalLM)
    common = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2)
    gpt2 = dict(common, n_positions=MAX_POS, n_embd=32, n_layer=2, n_head=4,
                activation_function="gelu_new")
    neox = dict(common, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=MAX_POS, hidden_act="gelu")
    return [
        ("gpt2", GPT2Config, GPT2LMHeadModel, gpt2, 1001, {}),
        ("gpt2_sharded", GPT2Config, GPT2LMHeadModel, gpt2, 1002, {"max_shard_size": "60KB"}),
        ("neox_parallel", GPTNeoXConfig, GPTNeoXForCausalLM,
         dict(neox, use_parallel_residual=True,
              rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                               "partial_rotary_factor": 0.25}), 1003, {}),
        ("neox_sequential", GPTNeoXConfig, GPTNeoXForCausalLM,
         dict(neox, use_parallel_residual=False,
              rope_parameters={"rope_type": "default", "rope_theta": 1000.0,
                               "partial_rotary_factor": 0.5}), 1004, {}),
        ("llama_gqa", LlamaConfig, LlamaForCausalLM,
         dict(common, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, intermediate_size=48, attention_bias=True,
              mlp_bias=True, rms_norm_eps=1e-5, max_position_embeddings=MAX_POS,
              rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                               "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 8}), 1005, {}),
        ("llama_linear", LlamaConfig, LlamaForCausalLM,
         dict(common, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=4, intermediate_size=48, attention_bias=False, mlp_bias=False,
              rms_norm_eps=1e-6, max_position_embeddings=MAX_POS, tie_word_embeddings=True,
              rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
         1006, {}),
        ("mistral_window", MistralConfig, MistralForCausalLM,
         dict(common, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, intermediate_size=64, max_position_embeddings=MAX_POS,
              sliding_window=3, rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
         1007, {}),
        ("bert", BertConfig, BertModel,
         dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=64, hidden_act="gelu", max_position_embeddings=MAX_POS,
              type_vocab_size=2), 1008, {}),
    ]


class PromoteFloat32(TorchFunctionMode):
    """Turns every float32 dtype request inside transformers into float64."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.float:
            return args[0].double()
        args = tuple(torch.float64 if a is torch.float32 else a for a in args)
        kwargs = {k: (torch.float64 if v is torch.float32 else v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def redraw_parameters(model):
    from transformers.pytorch_utils import Conv1D
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if isinstance(module, torch.nn.Embedding):
                    p.normal_(0.0, 0.5)
                elif name == "bias":
                    p.normal_(0.0, 0.1)
                elif p.ndim == 1:  # LayerNorm / RMSNorm weight
                    p.normal_(1.0, 0.2)
                elif isinstance(module, Conv1D):  # weight [in, out]
                    p.normal_(0.0, 1.0 / math.sqrt(p.shape[0]))
                else:  # nn.Linear weight [out, in]
                    p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]))


def base_and_layers(model):
    base = getattr(model, model.base_model_prefix, model)
    if hasattr(base, "h"):
        return base, base.h, base.ln_f
    if hasattr(base, "encoder"):
        return base, base.encoder.layer, None
    if hasattr(base, "final_layer_norm"):
        return base, base.layers, base.final_layer_norm
    return base, base.layers, base.norm


def forward(model, family, ids):
    extra = {}
    if family == "bert":
        extra = dict(attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids))
    return model(ids, use_cache=False, output_hidden_states=True, **extra)


def compute(model, family, ids):
    """states [L+1, B, T, d], per-layer Jacobians [T, d, T, d] of sequence 0, and the call records."""
    _, layers, final_norm = base_and_layers(model)
    n = len(layers)
    outs, inp = [None] * n, {}
    hooks = [layers[0].register_forward_pre_hook(
        lambda m, a, k: inp.update(x=a[0].detach().clone()), with_kwargs=True)]
    for i, layer in enumerate(layers):
        hooks.append(layer.register_forward_hook(
            lambda m, a, o, i=i: outs.__setitem__(i, (o[0] if isinstance(o, tuple) else o)
                                                  .detach().clone())))
    with torch.no_grad():
        result = forward(model, family, ids)
    states = torch.stack([inp["x"]] + outs)

    hidden = result.hidden_states
    assert len(hidden) == n + 1, len(hidden)
    checked = n + 1 if final_norm is None else n
    for l in range(checked):
        assert (hidden[l] - states[l]).abs().max().item() <= 1e-12, ("output_hidden_states", l)
    if final_norm is not None:
        with torch.no_grad():
            normed = final_norm(states[n])
        assert (hidden[n] - normed).abs().max().item() <= 1e-12, "final norm"

    # The exact arguments of every layer for sequence 0 alone.
    calls = [None] * n
    hooks += [layer.register_forward_pre_hook(
        lambda m, a, k, i=i: calls.__setitem__(i, (a, dict(k))), with_kwargs=True)
        for i, layer in enumerate(layers)]
    with torch.no_grad():
        forward(model, family, ids[0:1])
    for h in hooks:
        h.remove()

    jacobians = []
    for l, layer in enumerate(layers):
        args, kwargs = calls[l]
        for v in list(args[1:]) + list(kwargs.values()):
            assert not isinstance(v, transformers.cache_utils.Cache), "a cache reached the layer"

        def call(x, layer=layer, args=args, kwargs=kwargs):
            y = layer(x, *args[1:], **kwargs)
            return y[0] if isinstance(y, tuple) else y

        x0 = states[l][0:1]
        with torch.no_grad():
            y0 = call(x0)
        assert (y0 - states[l + 1][0:1]).abs().max().item() <= 1e-12, ("recorded call", l)
        J = torch.autograd.functional.jacobian(lambda x: call(x) - x, x0, vectorize=True)
        jacobians.append(J.reshape(T, x0.shape[-1], T, x0.shape[-1]).contiguous())
    return states, jacobians, calls


def check_mask(name, config, layers, jacobians, calls):
    family = config.model_type
    window = getattr(config, "sliding_window", None) if family == "mistral" else None
    t2 = torch.arange(T)[:, None]
    t1 = torch.arange(T)[None, :]
    visible = torch.ones(T, T, dtype=torch.bool) if family == "bert" else t1 <= t2
    if window is not None:
        visible = visible & (t2 - t1 < window)
    for layer, (args, kwargs) in zip(layers, calls):
        mask = inspect.signature(layer.forward).bind(*args, **kwargs).arguments.get("attention_mask")
        if family == "bert":
            # all-ones padding mask: create_bidirectional_mask skips the eager mask (None)
            assert mask is None, "BERT layer got a mask"
        else:
            assert mask is not None and mask.shape == (1, 1, T, T), "no eager mask reached the layer"
            assert torch.equal(mask[0, 0] == 0, visible), "unexpected mask pattern"
            assert torch.all(mask[0, 0][~visible] == torch.finfo(torch.float64).min)
    for l, J in enumerate(jacobians):
        block = J.abs().amax(dim=(1, 3))  # [t2, t1]
        assert torch.all(block[~visible] == 0), (name, l, "nonzero Jacobian outside the mask")
        assert torch.all(block[visible] > 0), (name, l, "zero Jacobian block inside the mask")
    return visible


def recompute_inv_freq(model):
    """Recomputes the rotary inv_freq under PromoteFloat32 (5.24 computes it in float32 at init)."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    for m in model.modules():
        if hasattr(m, "inv_freq") and hasattr(m, "rope_type"):
            fn = (m.compute_default_rope_parameters if m.rope_type == "default"
                  else ROPE_INIT_FUNCTIONS[m.rope_type])
            inv_freq, scaling = fn(m.config)
            m.inv_freq = inv_freq.to(torch.float64)
            m.original_inv_freq = m.inv_freq.clone()
            m.attention_scaling = scaling


def main():
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1])
        sys.exit(2)
    out_dir = sys.argv[1]
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(1)  # tiny tensors: threads only add contention (and run-to-run variation)
    os.makedirs(out_dir, exist_ok=True)
    start = time.time()
    for name, config_class, model_class, kwargs, seed, save_kwargs in cases():
        torch.manual_seed(seed)
        config = config_class(**kwargs, attn_implementation="eager")
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            model = model_class(config)
        finally:
            torch.set_default_dtype(previous)
        model = model.to(torch.float64).eval()
        redraw_parameters(model)
        family = config.model_type
        ids = torch.randint(0, VOCAB, (B, T), dtype=torch.int64)

        case_dir = os.path.join(out_dir, name)
        model.save_pretrained(case_dir, **save_kwargs)
        files = sorted(os.listdir(case_dir))
        if save_kwargs.get("max_shard_size"):
            shards = [f for f in files if f.endswith(".safetensors")]
            assert "model.safetensors.index.json" in files and len(shards) >= 2, files

        states, jacobians, calls = compute(model, family, ids)
        layers = base_and_layers(model)[1]
        visible = check_mask(name, config, layers, jacobians, calls)

        with PromoteFloat32():
            recompute_inv_freq(model)
            states64, jacobians64, _ = compute(model, family, ids)
        check_mask(name, config, layers, jacobians64, calls)
        ds = (states64 - states).abs().max().item()
        dj = max((a - b).abs().max().item() for a, b in zip(jacobians64, jacobians))
        if family in ("gpt2", "bert"):
            assert ds == 0 and dj == 0, (name, "float32 promotion changed a float64-clean model")

        tensors = {"input_ids": ids.contiguous(), "states": states.contiguous(),
                   "states_fp64": states64.contiguous()}
        for l, (J, J64) in enumerate(zip(jacobians, jacobians64)):
            tensors[f"jacobian.{l}"] = J
            tensors[f"jacobian_fp64.{l}"] = J64
        save_file(tensors, os.path.join(case_dir, "reference.safetensors"),
                  metadata={"case": name, "family": family})
        print(f"{name}: {family}, L={len(jacobians)}, d={states.shape[-1]}, "
              f"{sum(1 for f in files if f.endswith('.safetensors'))} weight file(s), "
              f"visible keys per query {visible.sum(1).tolist()}, "
              f"|fp64 - as-is| states {ds:.1e} jacobians {dj:.1e}")
    print(f"wrote {out_dir} in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
