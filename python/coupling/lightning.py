"""coupling.lightning.CouplingCallback: the C++ coupling callback in a Lightning run (docs/python.md).

    from coupling.lightning import CouplingCallback
    trainer = lightning.Trainer(max_steps=1000, callbacks=[CouplingCallback("runs/mine/coupling.h5", probe_ids,
                                                                            model=lambda module: module.model)])
    trainer.fit(module)                            # or trainer.fit(module, ckpt_path="last.ckpt")

On Lightning's hooks: on_train_start builds a coupling.Monitor on the model (step 0 measured on a fresh run;
a run restored from a checkpoint reopens its log at the checkpoint's step with the state Lightning kept for
this callback), on_train_batch_end records the update's loss and lr and measures when the schedule says so
(logging the headline scalars through pl_module.log_dict, so the run's logger gets them), state_dict and
load_state_dict put the callback's state into Lightning's checkpoints, on_train_end and on_exception close
the log. One
update per batch is assumed (no gradient accumulation). Under Lightning's DDP the ranks share the probes over
the job's process group and rank 0 writes the log (coupling.Monitor).
"""
import math

import lightning

from coupling.monitor import SCHEDULE, Monitor


class CouplingCallback(lightning.pytorch.Callback):
    """Measures a Lightning module's model on `probe_ids` into `log`.

    model: a function of the LightningModule that returns the model to measure (default: the module itself);
    schedule, k, tokens, spectrum and the keywords of coupling.Monitor as there."""

    def __init__(self, log, probe_ids, schedule=SCHEDULE, k=(10, 30, 50), tokens="last", spectrum="auto",
                 model=None, **monitor_options):
        self.log_path = str(log)
        self.probe_ids = probe_ids
        self.model_of = model or (lambda module: module)
        self.options = dict(schedule=schedule, k=k, tokens=tokens, spectrum=spectrum, **monitor_options)
        self.monitor = None
        self._restored = None

    @property
    def state_key(self):
        return f"CouplingCallback[{self.log_path}]"

    def state_dict(self):
        return self.monitor.state_dict() if self.monitor is not None else dict(self._restored or {})

    def load_state_dict(self, state_dict):
        self._restored = dict(state_dict)

    def on_train_start(self, trainer, pl_module):
        total = trainer.max_steps if trainer.max_steps > 0 else int(trainer.estimated_stepping_batches)
        start = trainer.global_step
        self.monitor = Monitor(self.log_path, self.model_of(pl_module), self.probe_ids, total_steps=total,
                               start_step=start, state=self._restored if start > 0 else None, **self.options)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        loss = float(loss) if loss is not None else math.nan
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        lr = optimizer.param_groups[0]["lr"] if optimizer is not None else math.nan
        scalars = self.monitor.step(trainer.global_step, loss, lr)
        if scalars is not None:
            pl_module.log_dict(scalars, on_step=True, on_epoch=False)

    def on_exception(self, trainer, pl_module, exception):
        self.on_train_end(trainer, pl_module)  # the log closed, so that this process may resume it

    def on_train_end(self, trainer, pl_module):
        if self.monitor is not None:
            self._restored = self.monitor.state_dict()  # a checkpoint saved after fit() resumes from here
            self.monitor.close()
            self.monitor = None

