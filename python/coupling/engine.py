"""The compiled engine (coupling._engine) and what every in-process entry point shares (docs/python.md).

coupling.measure, coupling.Monitor and coupling.hf.CouplingCallback run libcoupling's C++ engine on a model
that lives in this Python process. This module loads the extension (one-line errors that say what to do),
turns a model into what the engine measures, probes and options into the engine's own, and a measurement
into an xarray.Dataset with the names, axes and units of the HDF5 log (docs/hdf5-schema.md).

Models:
  - a `transformers` model of a family the C++ Hugging Face model implements (gpt2, gpt_neox, llama, mistral,
    bert): rebuilt in C++ on its live parameters at every measurement, token-local Jacobians (the fast path);
    float32 llama/mistral/bert weights are shared, GPT-2's Conv1D and GPT-NeoX's fused QKV are re-laid out
    (copied) each time;
  - anything else, given `embed` (inputs -> X^0 [B, T, d]) and `blocks` (callables X^l -> X^{l+1}, the skip
    connection included) and `causal`: the generic autograd path, several times slower.
"""
import contextlib
import json
import os
import warnings

import numpy as np

_STAMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_engine_build.json")
_REBUILD = "scripts/build.sh --torch pip"


class EngineImportError(ImportError):
    """The compiled engine cannot be used in this Python; the message says what to do."""


def load():
    """The extension module coupling._engine, after checking it was built for this torch and Python."""
    import sys

    import torch

    if not os.path.exists(_STAMP):
        raise EngineImportError(f"coupling's compiled engine is not built: run {_REBUILD} (it builds coupling._engine "
                                "into this package; `pip install ./python` installs the pure-Python part only)")
    with open(_STAMP) as f:
        built = json.load(f)
    have = torch.__version__.split("+")[0]
    if have != built["torch"]:
        raise EngineImportError(f"coupling._engine was built against torch {built['torch']}, this Python has torch "
                                f"{have}: rebuild it with {_REBUILD}")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if python != built["python"]:
        raise EngineImportError(f"coupling._engine was built for Python {built['python']}, this is Python {python}: "
                                f"rebuild it with {_REBUILD} from this Python's venv")
    try:
        from coupling import _engine
    except ImportError as error:
        raise EngineImportError(f"coupling._engine does not load ({error}): rebuild it with {_REBUILD}") from None
    return _engine


class Model:
    """A model as the engine sees it: the C++ adapter, its description for the log, and how to keep it as found."""

    def __init__(self, model, embed=None, blocks=None, causal=None, device=None):
        engine = load()
        self.module = model
        self.hf_config = None
        self.target = device  # where to measure; None: where the parameters are
        if embed is not None or blocks is not None:
            if embed is None or blocks is None or causal is None:
                raise ValueError("the generic path needs embed=, blocks= and causal= together")
            blocks = list(blocks)
            warnings.warn("coupling: measuring through embed/blocks callables (the generic autograd path): several "
                          "times slower than a transformers model of a supported family, which is measured token-local",
                          stacklevel=3)
            self.adapter = engine.CallableModel(embed, blocks, bool(causal))
            self.name = type(model).__name__ if model is not None else "callables"
            self.config_text = f"generic blocks={len(blocks)} causal={bool(causal)}"
            return
        config = getattr(model, "config", None)
        if config is None or not hasattr(config, "to_json_string") or not hasattr(model, "base_model"):
            raise ValueError(f"{type(model).__name__} is not a transformers model: give embed=, blocks= and causal= "
                             "for the generic path")
        family = getattr(config, "model_type", None)
        try:
            self.hf_config = engine.HfConfig.parse(config.to_json_string(use_diff=False), f"{type(model).__name__}.config")
        except ValueError as error:
            if family not in engine.supported_families.split(", "):
                raise ValueError(f"model family '{family}' is not one coupling implements ({engine.supported_families}): "
                                 "give embed=, blocks= and causal= for the generic path") from None
            raise ValueError(str(error)) from None
        base = model.base_model

        def tensors():
            named = [*base.named_parameters(), *base.named_buffers()]
            if self.target is None:
                return {name: t.detach() for name, t in named}
            return {name: t.detach().to(self.target) for name, t in named}

        self.adapter = engine.LiveHfModel(self.hf_config, tensors)
        self.name = family
        self.config_text = self.hf_config.summary()

    @property
    def generic(self):
        return self.hf_config is None

    def device(self):
        """Where to measure: the device asked for, else where the model's parameters are (the CPU for none)."""
        if self.target is not None:
            return self.target
        for p in self.module.parameters() if hasattr(self.module, "parameters") else ():
            return p.device
        import torch

        return torch.device("cpu")

    def check_probes(self, probes):
        """Raises ValueError unless the probes are ids the model knows (a transformers model)."""
        if self.hf_config is None:
            return
        if probes.dtype.is_floating_point or probes.dim() != 2:
            raise ValueError(f"probe ids must be an integer tensor [probes, tokens], got {probes.dtype} of shape "
                             f"{list(probes.shape)}")
        self.hf_config.check_probes(probes.shape[1], int(probes.min()), int(probes.max()))

    @contextlib.contextmanager
    def left_as_found(self):
        """Evaluation mode for the generic path's modules while measuring, then every module's mode as it was.

        A transformers model is only read (the C++ model has no dropout), so nothing needs restoring."""
        modules = list(self.module.modules()) if self.generic and hasattr(self.module, "modules") else []
        modes = [m.training for m in modules]
        for m in modules:
            m.training = False
        try:
            yield
        finally:
            for m, mode in zip(modules, modes):
                m.training = mode


def probe_tensor(probes):
    """Probe inputs: a tensor (token ids [P, T] for a transformers model), or the path of a --probe-ids file
    (one probe per line, token ids separated by spaces, scripts/tokenize_probes.py)."""
    import torch

    if isinstance(probes, (str, os.PathLike)):
        try:
            ids = np.loadtxt(probes, dtype=np.int64, ndmin=2)
        except (OSError, ValueError) as error:
            raise ValueError(f"probe ids file {probes}: {error} (one probe per line, token ids separated by spaces, "
                             "every line the same length)") from None
        probes = torch.from_numpy(ids)
    if not isinstance(probes, torch.Tensor):
        raise ValueError(f"probes must be a tensor or the path of a probe-ids file, got {type(probes).__name__}")
    if probes.dim() < 2 or probes.shape[0] == 0 or probes.shape[1] == 0:
        raise ValueError(f"probes must be [probes, tokens, ...] with at least one of each, got shape {list(probes.shape)}")
    if not probes.dtype.is_floating_point and int(probes.min()) < 0:
        raise ValueError(f"probe ids must be non-negative, got {int(probes.min())}")
    return probes.detach()


def options(k=(10, 30, 50), tokens="last", spectrum="auto", context_pairs="", jacobian="auto", depth_band=0):
    """The engine's measurement options. k: the K grid (the default grid is capped at d; any other K above d is
    an error); tokens: "last", "all", a token index or a list of them (negative = from the end)."""
    engine = load()
    k_values = [int(k)] if isinstance(k, int) else [int(v) for v in k]
    k_text = "" if k_values == [10, 30, 50] else ",".join(map(str, k_values))
    if isinstance(tokens, int):
        tokens = str(tokens)
    elif not isinstance(tokens, str):
        tokens = ",".join(str(int(t)) for t in tokens)
    if not isinstance(context_pairs, str):
        context_pairs = ",".join(f"{int(a)}:{int(b)}" for a, b in context_pairs)
    return engine.MeasurementOptions.parse(k_text, tokens, context_pairs, spectrum, jacobian, int(depth_band))


def memory_bytes(limit):
    """A memory limit in bytes: an int, or a text such as "4G" or "512MiB" (None: what the host has)."""
    if limit is None or isinstance(limit, int):
        return limit
    return load().parse_memory_size(str(limit), "max_memory")


def dataset(result, **attributes):
    """xarray.Dataset of one measurement (the engine's measurement dict): the log's variables without its step
    axis, categorical axes as their labels, every variable with its units and description."""
    import xarray as xr

    coords = {axis: result["labels"].get(axis, values) for axis, values in result["coordinates"].items()}
    data_vars = {name: (axes, value.numpy(), {"units": units, "description": description})
                 for name, (axes, value, units, description) in result["variables"].items()}
    return xr.Dataset(data_vars, coords=coords, attrs={**result["attributes"], **attributes})


def headline(result, prefix="coupling/"):
    """The headline scalars of a measurement, for a trainer's logs: m_K at the smallest K (ujv, norm; mean over
    probes and tokens) with its uncoupled null, LSS and the norm growth rate (means over probes and tokens), as
    the engine's summaries compute them (the headline_* attributes)."""
    a, k = result["attributes"], result["attributes"]["headline_k"]
    return {f"{prefix}m_{k}": a["headline_m"], f"{prefix}m_{k}_null": a["headline_m_null"],
            f"{prefix}lss": a["headline_lss"], f"{prefix}norm_growth_rate": a["headline_norm_growth_rate"]}
