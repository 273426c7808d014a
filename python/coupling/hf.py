"""coupling.hf.CouplingCallback: the C++ coupling callback inside a transformers Trainer run (docs/python.md).

    from coupling.hf import CouplingCallback
    trainer = Trainer(model=model, args=args, train_dataset=train)
    CouplingCallback("runs/gpt2/coupling.h5", probe_ids, schedule="log:8").attach(trainer)
    trainer.train()                                   # or trainer.train(resume_from_checkpoint=True)

What it does, on the Trainer's events:
  on_train_begin  builds a coupling.Monitor on the Trainer's model (step 0 measured on a fresh run; a resumed
                  run reopens its log at the checkpoint's step with the state saved beside it)
  on_step_end     measures when the schedule says so (the C++ trainer's schedule strings) and asks the
                  Trainer to log at that step
  on_log          writes the Trainer's logged loss and learning rate as /train rows (the mean loss over
                  logging_steps updates, at the update that logged it) and eval_loss as /eval rows, and adds
                  the headline scalars (coupling/m_K, coupling/m_K_null, coupling/lss,
                  coupling/norm_growth_rate, coupling/step: the step they were measured at) to `logs`
  on_save         writes its state (coupling_callback.json) into the checkpoint directory
  on_train_end    closes the log
`report_to` integrations see the scalars only when this callback runs before them: attach(trainer) puts it
first; passed as Trainer(callbacks=[...]) it runs after them (the log gets everything either way).
Under torchrun every rank measures its share of the probes over the job's process group and rank 0
writes the log (coupling.Monitor).
"""
import json
import math
import os

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from coupling.engine import headline
from coupling.monitor import SCHEDULE, Monitor

STATE_FILE = "coupling_callback.json"


class CouplingCallback(TrainerCallback):
    """Measures the Trainer's model on `probe_ids` (a LongTensor [P, T] or a probe-ids file) into `log`.

    schedule, k, tokens, spectrum and the keywords of coupling.Monitor (max_overhead, jacobian, depth_band,
    context_pairs, max_memory, embed/blocks/causal for a model of another family) as there."""

    def __init__(self, log, probe_ids, schedule=SCHEDULE, k=(10, 30, 50), tokens="last", spectrum="auto",
                 **monitor_options):
        self.log_path = os.fspath(log)
        self.probe_ids = probe_ids
        self.options = dict(schedule=schedule, k=k, tokens=tokens, spectrum=spectrum, **monitor_options)
        self.monitor = None
        self._pending = None  # headline scalars of a measurement not yet in the Trainer's logs

    def attach(self, trainer):
        """Adds this callback to `trainer` ahead of its other callbacks, so that report_to sees its scalars."""
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(0, self)
        return self

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        start = state.global_step
        saved = None
        if start > 0:
            path = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{start}", STATE_FILE)
            if not os.path.exists(path):  # refused before the log is opened, which stays as it is
                raise FileNotFoundError(
                    f"resuming at step {start}, the coupling callback finds no {path}: it reads its state from "
                    f"output_dir's {PREFIX_CHECKPOINT_DIR}-{start} (a checkpoint elsewhere, or one saved by a run "
                    "killed before the callback's on_save, has none): resume from a checkpoint of output_dir that has it")
            with open(path) as f:
                saved = json.load(f)
        options = {"seed": args.seed, **self.options}
        self.monitor = Monitor(self.log_path, model, self.probe_ids, total_steps=state.max_steps, start_step=start,
                               state=saved, **options)
        if self.monitor.latest is not None:
            self._pending = {**headline(self.monitor.latest), "coupling/step": 0}

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        lr = lr_scheduler.get_last_lr()[0] if lr_scheduler is not None else math.nan
        scalars = self.monitor.step(state.global_step, lr=lr, tokens_seen=state.num_input_tokens_seen,
                                    checkpoint=_saves_at(args, state, control), training_row=False)
        if scalars is not None:
            self._pending = {**scalars, "coupling/step": state.global_step}
            control.should_log = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs if logs is not None else {}
        if "loss" in logs:
            self.monitor.record_training(state.global_step - 1, logs["loss"], logs.get("learning_rate", math.nan),
                                         state.num_input_tokens_seen)
        if "eval_loss" in logs:
            self.monitor.eval(state.global_step, logs["eval_loss"])
        if self._pending is not None:
            logs.update(self._pending)
            self._pending = None

    def on_save(self, args, state, control, **kwargs):
        directory = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        if not state.is_world_process_zero or not os.path.isdir(directory):
            return
        path = os.path.join(directory, STATE_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(self.monitor.state_dict(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)

    def on_train_end(self, args, state, control, **kwargs):
        if self.monitor is not None:
            self.monitor.close()


def _saves_at(args, state, control):
    """Whether the Trainer checkpoints at this step: attached first, this callback runs before the Trainer's
    own flow callback sets control.should_save for its save_steps."""
    every = state.save_steps or 0
    return bool(control.should_save or (args.save_strategy == "steps" and every > 0 and state.global_step % every == 0))

