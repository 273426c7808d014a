#!/usr/bin/env python3
"""Turns probe prompts (one per line) into token ids with the model's own tokenizer, so that the
C++ side (which has no tokenizer) can feed a Hugging Face model the same ids transformers would.
Every output line has the same number of ids, so the lines stack into one [prompts, length] batch:
longer prompts are cut to their first N ids, shorter ones are padded on the right with the
tokenizer's pad token (else its eos token). Runs offline (HF_HUB_OFFLINE=1): MODEL_DIR must hold
the tokenizer files (tokenizer.json / vocab.txt / tokenizer_config.json ...).

Usage: scripts/tokenize_probes.py MODEL_DIR PROMPTS.txt [--length N] [--no-special-tokens] > ids.txt
  --length N             ids per line (default: the shortest prompt's length, so nothing is padded)
  --no-special-tokens    do not add the tokenizer's special tokens (BERT: [CLS] ... [SEP])
A summary line goes to stderr. Errors: one line on stderr, exit status 2.
Needs transformers: run it with the project's venv, .venv/bin/python.
"""
import argparse
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

PROG = "tokenize_probes"


def fail(message):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(2)


def main():
    parser = argparse.ArgumentParser(prog=PROG, description="Tokenize probe prompts into fixed-length id lines.")
    parser.add_argument("model_dir", help="directory with the model's tokenizer files")
    parser.add_argument("prompts", help="text file, one prompt per line (empty lines are skipped)")
    parser.add_argument("--length", type=int, help="ids per output line (default: shortest prompt's length)")
    parser.add_argument("--no-special-tokens", action="store_true", help="do not add [CLS]/[SEP], BOS/EOS, ...")
    args = parser.parse_args()

    if not os.path.isdir(args.model_dir):
        fail(f"model directory not found: {args.model_dir}")
    if not os.path.isfile(args.prompts):
        fail(f"prompts file not found: {args.prompts}")
    if args.length is not None and args.length < 1:
        fail(f"--length must be at least 1, got {args.length}")
    try:
        with open(args.prompts, encoding="utf-8") as f:
            prompts = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {args.prompts}: {e}")
    if not prompts:
        fail(f"no prompts in {args.prompts}")

    try:
        import transformers
    except ImportError:
        fail("transformers is not installed for this python: use the project's venv, .venv/bin/python")
    transformers.logging.set_verbosity_error()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(args.model_dir)
    except Exception as e:  # noqa: BLE001 - any load failure is a one-line error
        fail(f"cannot load a tokenizer from {args.model_dir}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    add_special = not args.no_special_tokens
    ids = [list(tokenizer(p, add_special_tokens=add_special)["input_ids"]) for p in prompts]
    shortest = min(len(x) for x in ids)
    length = args.length if args.length is not None else shortest
    if length < 1:
        fail("the shortest prompt has no tokens: pass --length")

    n_short = sum(len(x) < length for x in ids)
    pad_id, pad_name = None, None
    if n_short:
        if tokenizer.pad_token_id is not None:
            pad_id, pad_name = tokenizer.pad_token_id, "pad"
        elif tokenizer.eos_token_id is not None:
            pad_id, pad_name = tokenizer.eos_token_id, "eos"
        else:
            fail(f"{n_short} prompts are shorter than {length} tokens and the tokenizer has neither a pad "
                 f"nor an eos token: pass --length no longer than the shortest prompt ({shortest})")

    n_cut = 0
    out = []
    for x in ids:
        if len(x) > length:
            n_cut += 1
            x = x[:length]
        elif len(x) < length:
            x = x + [pad_id] * (length - len(x))
        out.append(" ".join(str(int(i)) for i in x))
    sys.stdout.write("\n".join(out) + "\n")

    padded = f"{n_short} padded" + (f" with {pad_name} id {pad_id}" if n_short else "")
    print(f"{PROG}: {len(prompts)} prompts, length {length} (prompts {shortest}-{max(len(x) for x in ids)} tokens, "
          f"special tokens {'on' if add_special else 'off'}), {n_cut} cut, {padded}", file=sys.stderr)


if __name__ == "__main__":
    main()
