"""Bad input to the Python engine: one clear sentence in a Python exception, and the log untouched."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from test_measure import gpt2, probe_ids

import coupling
from coupling.monitor import Monitor


def one_line(error):
    text = str(error.value)
    assert "\n" not in text.strip(), text
    return text


def test_a_family_it_does_not_know():
    from transformers import OPTConfig, OPTForCausalLM

    model = OPTForCausalLM(OPTConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                     num_attention_heads=2, max_position_embeddings=16, word_embed_proj_dim=16))
    with pytest.raises(ValueError) as error:
        coupling.measure(model, probe_ids())
    assert "model family 'opt' is not one coupling implements" in one_line(error)
    assert "embed=, blocks= and causal=" in str(error.value)


def test_a_module_that_is_no_transformers_model():
    with pytest.raises(ValueError) as error:
        coupling.measure(torch.nn.Linear(4, 4), probe_ids())
    assert "Linear is not a transformers model" in one_line(error)


def test_probe_ids_out_of_the_vocabulary():
    with pytest.raises(ValueError) as error:
        coupling.measure(gpt2(), torch.full((2, 8), 64))
    assert "vocab" in one_line(error)
    with pytest.raises(ValueError) as error:
        coupling.measure(gpt2(), torch.full((2, 8), -1))
    assert "non-negative" in one_line(error)


def test_k_larger_than_d():
    with pytest.raises(ValueError) as error:
        coupling.measure(gpt2(d=32), probe_ids(), k=(8, 40))
    assert "40" in one_line(error) and "32" in str(error.value)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_log_of_another_run_is_refused_and_left_alone(trainer_run, tmp_path):
    log = tmp_path / "coupling.h5"
    shutil.copy(trainer_run / "coupling.h5", log)
    before = digest(log)
    # A fresh run onto an existing log.
    with pytest.raises(OSError) as error:
        Monitor(log, gpt2(), probe_ids(), total_steps=60)
    assert "already exists" in one_line(error)
    # Resuming it with another model and other probes.
    with open(trainer_run / "checkpoint-30" / "coupling_callback.json") as f:
        state = json.load(f)
    with pytest.raises(OSError) as error:
        Monitor(log, gpt2(), probe_ids(), total_steps=60, start_step=30, state=state, schedule="steps:10,30,60")
    one_line(error)
    assert digest(log) == before


def test_a_trainer_checkpoint_without_the_callback_state_is_refused_by_path(trainer_run, tmp_path):
    from types import SimpleNamespace

    from coupling.hf import STATE_FILE, CouplingCallback

    run = tmp_path / "run"
    shutil.copytree(trainer_run, run)
    (run / "checkpoint-30" / STATE_FILE).unlink()
    before = digest(run / "coupling.h5")
    callback = CouplingCallback(run / "coupling.h5", probe_ids(), schedule="steps:10,30,60")
    with pytest.raises(OSError) as error:
        callback.on_train_begin(SimpleNamespace(output_dir=str(run), seed=0),
                                SimpleNamespace(global_step=30, max_steps=60), None, model=gpt2())
    assert str(run / "checkpoint-30" / STATE_FILE) in one_line(error)
    assert digest(run / "coupling.h5") == before


def package_copy(tmp_path, stamp=None):
    """python/coupling without the compiled engine (and with `stamp` as its build record, if given)."""
    source = os.path.dirname(coupling.__file__)
    target = tmp_path / "python" / "coupling"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("_engine*", "__pycache__"))
    if stamp is not None:
        (target / "_engine_build.json").write_text(json.dumps(stamp))
    return target.parent


@pytest.mark.parametrize("stamp, expected", [
    (None, "coupling's compiled engine is not built: run scripts/build.sh --torch pip"),
    ({"torch": "1.0.0", "python": "3.11"}, "was built against torch 1.0.0, this Python has torch"),
])
def test_import_errors_say_what_to_do(tmp_path, stamp, expected):
    root = package_copy(tmp_path, stamp)
    p = subprocess.run([sys.executable, "-c", "import coupling, torch; coupling.measure(None, torch.zeros(1, 2))"],
                       capture_output=True, text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                       timeout=120)
    assert p.returncode == 1
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("coupling.engine.EngineImportError: ") and expected in last, p.stderr


def test_pip_install_of_the_package_is_pure_python(tmp_path):
    """`pip install ./python` builds a wheel without the compiled engine, even beside a built one."""
    import zipfile

    python = os.path.dirname(os.path.dirname(coupling.__file__))
    assert any(name.startswith("_engine") for name in os.listdir(os.path.dirname(coupling.__file__)))
    shutil.copytree(python, tmp_path / "python", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp_path / "wheel"), str(tmp_path / "python")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    (wheel,) = (tmp_path / "wheel").iterdir()
    names = zipfile.ZipFile(wheel).namelist()
    assert "coupling/engine.py" in names and not [n for n in names if "_engine" in n or n.endswith(".so")], names
