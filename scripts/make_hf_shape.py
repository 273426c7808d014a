"""Writes a random-weight Hugging Face model directory of a named shape, as a user downloads one:
config.json from transformers' own config class, and safetensors shards with an index
(model.safetensors.index.json), one block per shard. The model class is only built on the meta
device (for its tensor names and shapes), never in memory: a Llama-3-8B shape takes one block's
worth of RAM to write, and about 16 GB of disk in BF16.

Runs in the project's venv (transformers, safetensors):
    .venv/bin/python scripts/make_hf_shape.py llama-3-8b OUT_DIR [--dtype bf16|f32] [--layers N]
        [--vocab V] [--seed S]
    .venv/bin/python scripts/make_hf_shape.py --list

Weights are drawn as transformers initialises them: linear and embedding weights N(0, 0.02^2),
norm weights 1, biases 0 (seeded, so two runs with the same arguments write the same bytes).
"""
import argparse
import json
import os
import sys


def pythia(d, layers, heads):
    return "GPTNeoXConfig", dict(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                                 intermediate_size=4 * d, vocab_size=50304, max_position_embeddings=2048,
                                 rotary_pct=0.25, use_parallel_residual=True, layer_norm_eps=1e-5,
                                 tie_word_embeddings=False)


def llama3(d, layers, heads, kv_heads, mlp, vocab=128256, context=131072, tied=False):
    return "LlamaConfig", dict(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                               num_key_value_heads=kv_heads, intermediate_size=mlp, vocab_size=vocab,
                               max_position_embeddings=context, rms_norm_eps=1e-5, tie_word_embeddings=tied,
                               rope_theta=500000.0)


SHAPES = {
    # name: (transformers config class, its arguments)
    "gpt2-small": ("GPT2Config", dict(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024)),
    "pythia-160m": pythia(768, 12, 12),
    "pythia-1.4b": pythia(2048, 24, 16),
    "llama-3-8b": llama3(4096, 32, 32, 8, 14336),
    "llama-3-70b": llama3(8192, 80, 64, 8, 28672),
    # Small shapes for the tests: Llama 3's layout (GQA, llama3 rotary scaling) at d = 64, and two
    # d = 512 blocks under a vocabulary whose float32 embedding (512 MiB) dwarfs them.
    "llama-tiny": llama3(64, 2, 4, 2, 160, vocab=512, context=256),
    "llama-tiny-vocab": llama3(512, 2, 4, 2, 160, vocab=262144, context=256, tied=True),
}
# Llama 3's rotary scaling, as its config.json on the Hub gives it.
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}


def fail(message):
    print(f"make_hf_shape: {message}", file=sys.stderr)
    sys.exit(2)


def make_config(shape, layers, vocab):
    import transformers
    class_name, arguments = SHAPES[shape]
    arguments = dict(arguments)
    depth_key = "n_layer" if class_name == "GPT2Config" else "num_hidden_layers"
    if layers is not None:
        arguments[depth_key] = layers
    if vocab is not None:
        arguments["vocab_size"] = vocab
    config = getattr(transformers, class_name)(**arguments)
    if class_name == "LlamaConfig":
        # transformers 5 keeps theta and the scaling in one rope_parameters dict.
        if hasattr(config, "rope_parameters") and isinstance(config.rope_parameters, dict):
            rope = dict(LLAMA3_ROPE, rope_theta=arguments["rope_theta"])
            # A short test model keeps the scaling's shape within its own context.
            rope["original_max_position_embeddings"] = min(rope["original_max_position_embeddings"],
                                                           config.max_position_embeddings // 4)
            config.rope_parameters = {**config.rope_parameters, **rope}
        else:
            config.rope_scaling = dict(LLAMA3_ROPE)
    config.architectures = [{"GPT2Config": "GPT2LMHeadModel", "GPTNeoXConfig": "GPTNeoXForCausalLM",
                             "LlamaConfig": "LlamaForCausalLM"}[class_name]]
    return config, getattr(config, depth_key)


def shard_of(name):
    """The block index a tensor belongs to, or None for the embeddings and the head."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part in ("h", "layers") and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shape", nargs="?", choices=sorted(SHAPES))
    parser.add_argument("out", nargs="?", help="directory to create (must not exist)")
    parser.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    parser.add_argument("--layers", type=int, help="cut the depth to N blocks")
    parser.add_argument("--vocab", type=int, help="vocabulary size (default: the shape's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list", action="store_true", help="print the shapes and exit")
    args = parser.parse_args()
    if args.list:
        for name, (class_name, arguments) in SHAPES.items():
            print(name, class_name, json.dumps(arguments))
        return
    if args.shape is None or args.out is None:
        fail("give a shape and an output directory (--list shows the shapes)")
    if args.layers is not None and args.layers < 1:
        fail(f"--layers {args.layers}: give at least 1 block")
    if args.vocab is not None and args.vocab < 2:
        fail(f"--vocab {args.vocab}: give at least 2 tokens")
    if os.path.exists(args.out):
        fail(f"{args.out} exists: give a new directory")

    import torch
    import transformers
    from safetensors.torch import save_file

    config, layers = make_config(args.shape, args.layers, args.vocab)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    tied = getattr(config, "tie_word_embeddings", False)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if tied:  # save_pretrained drops a tied head
        shapes = {name: shape for name, shape in shapes.items() if name != "lm_head.weight"}
    del model

    groups = {}
    for name in shapes:
        groups.setdefault(shard_of(name), []).append(name)
    order = [None] + list(range(layers))
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    generator = torch.Generator().manual_seed(args.seed)
    os.makedirs(args.out)
    config.dtype = "bfloat16" if args.dtype == "bf16" else "float32"
    config.save_pretrained(args.out)
    weight_map, total = {}, 0
    files = len(order)
    for index, group in enumerate(order):
        file = f"model-{index + 1:05d}-of-{files:05d}.safetensors"
        tensors = {}
        for name in sorted(groups.get(group, [])):
            shape = shapes[name]
            if name.endswith(".bias"):
                value = torch.zeros(shape)
            elif "norm" in name.lower() or ".ln_" in name:
                value = torch.ones(shape)
            else:
                value = torch.randn(shape, generator=generator) * config.initializer_range
            tensors[name] = value.to(dtype).contiguous()
            weight_map[name] = file
            total += tensors[name].numel() * tensors[name].element_size()
        save_file(tensors, os.path.join(args.out, file), metadata={"format": "pt"})
        del tensors
        print(f"make_hf_shape: {file} ({'embeddings and head' if group is None else f'block {group}'})", flush=True)
    with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    print(f"make_hf_shape: {args.out}: {args.shape}, {layers} blocks, {args.dtype}, {total / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
