"""coupling.lightning.CouplingCallback in a Lightning run of a tiny GPT-2: its measurements equal coupling.measure
of the same model, a run stopped and restored from its checkpoint equals an uninterrupted one."""
import lightning
import numpy as np
import pytest
import torch
from conftest import max_differences
from test_measure import gpt2, probe_ids

import coupling
from coupling.lightning import CouplingCallback
from coupling.log import open_log

STEPS = 12


class Module(lightning.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = gpt2(dropout=0.0)  # Lightning does not restore the global RNG that dropout draws from

    def training_step(self, batch, batch_idx):
        return self.model(batch, labels=batch).loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def batches():
    return [torch.randint(0, 64, (8,), generator=torch.Generator().manual_seed(i)) for i in range(2 * STEPS)]  # 6 batches an epoch: step 6 ends one


class Crash(lightning.pytorch.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 7:
            raise RuntimeError("crash at step 7")


def fit(log, directory, ckpt_path=None, crash=False):
    module = Module()
    callback = CouplingCallback(log, probe_ids(), schedule="every:4", model=lambda m: m.model)
    saves = lightning.pytorch.callbacks.ModelCheckpoint(directory, "{step}", every_n_train_steps=6, save_top_k=-1)
    trainer = lightning.Trainer(max_steps=STEPS, accelerator="cpu", devices=1, logger=False,
                                enable_progress_bar=False, enable_model_summary=False, default_root_dir=directory,
                                callbacks=[callback, saves] + ([Crash()] if crash else []))
    loader = torch.utils.data.DataLoader(batches(), batch_size=4, shuffle=False)
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    return trainer, module


def test_measurements_and_restore(tmp_path):
    whole = tmp_path / "whole.h5"
    _, module = fit(whole, tmp_path / "whole")
    ds = open_log(whole, "all")
    assert ds.step.values.tolist() == [0, 4, 8, 12]
    assert ds.train_step.values.tolist() == list(range(STEPS)) and np.isfinite(ds.train_loss.values).all()
    last = coupling.measure(module.model, probe_ids())
    differences = max_differences(last, ds.sel(step=STEPS)[list(last.data_vars)])
    assert max(differences.values()) <= 1e-5, differences
    # Stopped by an exception at step 7, restored from the checkpoint of step 6: the same log.
    parts = tmp_path / "parts.h5"
    with pytest.raises(RuntimeError, match="crash at step 7"):
        fit(parts, tmp_path / "parts", crash=True)
    assert open_log(parts).step.values.tolist() == [0, 4]
    fit(parts, tmp_path / "parts", ckpt_path=tmp_path / "parts" / "step=6.ckpt")
    resumed = open_log(parts, "all")
    assert resumed.step.values.tolist() == [0, 4, 8, 12]
    assert resumed.train_step.values.tolist() == list(range(STEPS))
    differences = max_differences(resumed, ds)
    assert max(differences.values()) <= 1e-5, differences
