"""coupling.Monitor: the C++ coupling callback in a hand-written PyTorch training loop (docs/python.md).

    monitor = coupling.Monitor("runs/mine/coupling.h5", model, probe_ids, total_steps=1000)   # measures step 0
    for step in range(1, 1001):
        ...                                  # forward, backward, optimizer.step()
        monitor.step(step, loss.item(), lr)  # measures when the schedule says so
    monitor.close()

It writes the standard log through the C++ CouplingLog (same schema, row checksums, crash safety) on the
schedule strings of the C++ trainer ("log:8", "every:N", "steps:A,B", "checkpoints"), plus step 0 and the
last step. To resume, store monitor.state_dict() in your checkpoint and pass it back with start_step.
Under torch.distributed the ranks share the probes over the default process group (every rank makes a
Monitor with the same arguments) and rank 0 writes the log; a group the engine cannot use leaves rank 0
measuring alone (a warning says so).
"""
import math
import time
import warnings

from coupling import engine

SCHEDULE = "log:8"


def _process_group():
    """The job's default process group when torch.distributed runs more than one rank, else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.group.WORLD
    return None


class Monitor:
    """Measures `model` on fixed probes at scheduled steps into the log `log`; see the module's docstring.

    Arguments as coupling.measure's, and: total_steps (the run's last step, which the schedule needs),
    schedule, max_overhead (defer a measurement while measuring exceeds this fraction of training time; 0 =
    never), seed (stored in the log), start_step and state (a resumed run: the step it resumes at and the
    state_dict() saved with that checkpoint), name and config (the model's name and configuration text for the
    log; defaults describe the model), training_bytes (memory training still allocates beyond what it holds).
    """

    def __init__(self, log, model, probe_ids, total_steps, schedule=SCHEDULE, k=(10, 30, 50), tokens="last",
                 spectrum="auto", *, embed=None, blocks=None, causal=None, context_pairs="", jacobian="auto",
                 depth_band=0, max_overhead=0.0, seed=0, start_step=0, state=None, name=None, config=None,
                 max_memory=None, training_bytes=0):
        self._live = engine.Model(model, embed=embed, blocks=blocks, causal=causal)
        probes = engine.probe_tensor(probe_ids)
        self._live.check_probes(probes)
        self._engine = engine.load()
        self.total_steps = int(total_steps)
        if self.total_steps < 1 or start_step < 0 or start_step > self.total_steps:
            raise ValueError(f"total_steps {total_steps} and start_step {start_step}: need 0 <= start_step <= "
                             "total_steps and total_steps >= 1")
        measurement_options = engine.options(k, tokens, spectrum, context_pairs, jacobian, depth_band)
        group = _process_group()
        self._session = None
        if group is not None and not self._engine.CallbackSession.takes_process_group(group):
            import torch.distributed as dist

            warnings.warn("coupling: the job's process group is not one this build of coupling._engine can take (a "
                          "torch built otherwise?): rank 0 measures alone", stacklevel=2)
            group = None if dist.get_rank() == 0 else False
        if group is not False:
            self._session = self._engine.CallbackSession(
                self._live.adapter, probes.to(self._live.device()), str(log), schedule, measurement_options,
                float(max_overhead), name or self._live.name, config or self._live.config_text, int(seed),
                int(training_bytes), engine.memory_bytes(max_memory), group)
        self._wall_before = float((state or {}).get("wall_seconds", 0.0))
        self._started = time.monotonic()
        self.step_seen = int(start_step)
        self.latest = None  # the latest measurement's engine dict (coupling.engine.dataset makes it a Dataset)
        if self._session is None:
            return
        resumed = start_step > 0 or state is not None
        if resumed:
            self._session.load_state(int(start_step), {k: str(v) for k, v in (state or {}).items()})
        begin = self._engine.TrainBegin(int(start_step), self.total_steps, resumed, self._wall_before)
        with self._live.left_as_found():
            self._session.setup(begin)
            self._took(self._session.train_begin(begin))

    def _took(self, result):
        if result is not None:
            self.latest = result
        return result

    @property
    def wall_seconds(self):
        """Run wall time so far (earlier sessions of a resumed run included)."""
        return self._wall_before + time.monotonic() - self._started

    @property
    def measure_seconds(self):
        return self._session.measure_seconds if self._session else 0.0

    def overhead_fraction(self):
        """Measurement seconds per training second so far (CouplingCallback::overhead_fraction)."""
        return self._session.overhead_fraction(self.wall_seconds) if self._session else 0.0

    def step(self, step, loss=math.nan, lr=math.nan, tokens_seen=0, checkpoint=False, training_row=True):
        """After update `step` (updates completed): logs loss and lr, measures when due. Returns the
        measurement's headline scalars (coupling.engine.headline) when it measured, else None."""
        self.step_seen = int(step)
        if self._session is None:
            return None
        end = self._engine.StepEnd(int(step), self.total_steps, float(loss), float(lr), int(tokens_seen),
                                   self.wall_seconds, bool(checkpoint), bool(training_row))
        with self._live.left_as_found():
            result = self._took(self._session.step_end(end))
        return engine.headline(result) if result is not None else None

    def record_training(self, step, loss, lr=math.nan, tokens_seen=0):
        """A /train row for update `step` (counted from 0), for loops that know their loss after step()."""
        if self._session is not None:
            self._session.record_training(int(step), float(loss), float(lr), int(tokens_seen), self.wall_seconds)

    def eval(self, step, val_loss):
        """A held-out loss at `step` (the /eval group)."""
        if self._session is not None:
            self._session.eval(int(step), float(val_loss))

    def state_dict(self):
        """What a resumed run needs (strings and numbers): save it with the checkpoint of step `step_seen`."""
        state = dict(self._session.save_state(self.step_seen)) if self._session else {}
        state["wall_seconds"] = repr(self.wall_seconds)
        return state

    def close(self):
        """Closes the log (a measurement that is due at total_steps happens in step(total_steps))."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
