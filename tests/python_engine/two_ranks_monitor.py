"""coupling.Monitor on two torchrun ranks (tests/python_engine/test_monitor.py): a plain loop of 4 SGD steps on
the same batches on both ranks, measured at 0, 2 and 4 into OUT.

    torchrun --standalone --nproc-per-node 2 two_ranks_monitor.py OUT [--refuse-group]

--refuse-group makes the engine decline the job's process group, as a torch whose pybind11 shares no types
with this build would: rank 0 then measures alone.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "python")]

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from test_measure import gpt2, probe_ids  # noqa: E402

from coupling import engine  # noqa: E402
from coupling.monitor import Monitor  # noqa: E402


def main(out, refuse_group):
    dist.init_process_group("gloo")
    if refuse_group:
        engine.load().CallbackSession.takes_process_group = staticmethod(lambda group: False)
    model = gpt2(dropout=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = Monitor(out, model, probe_ids(4), total_steps=4, schedule="every:2")
    for step in range(1, 5):
        batch = torch.randint(0, 64, (4, 8), generator=torch.Generator().manual_seed(step))
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.step(step, loss.item(), 0.05)
    monitor.close()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], "--refuse-group" in sys.argv[2:])
