"""A tiny GPT-2 (random init, byte-level ids of the KJV Bible) trained by transformers' Trainer with
coupling.hf.CouplingCallback: the run the Python engine's tests check against coupling-analyze --hf.

    tiny_trainer.py OUT [--steps 60] [--kill-at N] [--resume]      (also under torchrun --nproc-per-node 2)

OUT gets tensorboard/ (report_to), checkpoint-0 (save_pretrained before train(): the Trainer saves no step 0), the Trainer's checkpoints
at SAVE_STEPS, coupling.h5 (measured at step 0 and SCHEDULE) and probe_ids.txt. --kill-at N SIGKILLs the
process at the end of update N; --resume continues from the latest checkpoint.
"""
import argparse
import os
import signal
import sys

import torch
import transformers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import coupling_path  # noqa: E402  (the checkout's python/ first on sys.path)
from coupling.hf import CouplingCallback  # noqa: E402

SCHEDULE = "steps:10,30,60"
SAVE_STEPS = (10, 30, 60)
CONTEXT = 32
PROBES = 4


def kjv_bytes():
    path = os.environ.get("COUPLING_KJV") or os.path.join(coupling_path.REPOSITORY, "data", "kjv.txt")
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8).long()


class Windows(torch.utils.data.Dataset):
    """Byte windows of the first 90% of the text (the probes come from the rest)."""

    def __init__(self, text, count=4096):
        self.text = text[: int(len(text) * 0.9)]
        self.starts = torch.linspace(0, len(self.text) - CONTEXT - 1, count).long()

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        window = self.text[self.starts[i]: self.starts[i] + CONTEXT]
        return {"input_ids": window, "labels": window}


def probe_ids(text):
    held_out = text[int(len(text) * 0.9):]
    return torch.stack([held_out[i * 1000: i * 1000 + CONTEXT] for i in range(PROBES)])


def model():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=256, n_positions=64, n_embd=64, n_layer=3, n_head=4,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config)


class SaveAt(transformers.TrainerCallback):
    """Checkpoints at SAVE_STEPS; SIGKILL at the end of update `kill_at`."""

    def __init__(self, kill_at):
        self.kill_at = kill_at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in SAVE_STEPS:
            control.should_save = True
        if state.global_step == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return control


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--kill-at", type=int, default=-1)
    parser.add_argument("--resume", action="store_true")
    a = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ["TENSORBOARD_LOGGING_DIR"] = os.path.join(a.out, "tensorboard")
    text = kjv_bytes()
    net = model()
    probes = probe_ids(text)
    args = transformers.TrainingArguments(
        output_dir=a.out, max_steps=a.steps, per_device_train_batch_size=8, learning_rate=2e-3,
        lr_scheduler_type="linear", warmup_steps=5, logging_steps=1, save_strategy="no", report_to=["tensorboard"], seed=0,
        use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
    trainer = transformers.Trainer(model=net, args=args, train_dataset=Windows(text), callbacks=[SaveAt(a.kill_at)])
    CouplingCallback(os.path.join(a.out, "coupling.h5"), probes, schedule=SCHEDULE).attach(trainer)
    if trainer.args.process_index == 0 and not a.resume:
        os.makedirs(a.out, exist_ok=True)
        net.save_pretrained(os.path.join(a.out, "checkpoint-0"))
        with open(os.path.join(a.out, "probe_ids.txt"), "w") as f:
            f.writelines(" ".join(map(str, row.tolist())) + "\n" for row in probes)
    trainer.train(resume_from_checkpoint=True if a.resume else None)


if __name__ == "__main__":
    main(sys.argv[1:])
