"""coupling.measure: one measurement of a model in this Python process, as an xarray.Dataset (docs/python.md).

    import coupling
    ds = coupling.measure(model, input_ids)                 # a transformers model, token ids [P, T]
    ds.depth_mean_offdiag_avg.sel(k=10, orientation="ujv", normalisation="norm").mean("token")

The variables, axes, units and descriptions are those of the HDF5 log's /measurement group, without its step
axis (docs/hdf5-schema.md); the attributes hold the headline line, the timings (seconds_*), the peak memory
and the options. The model is left as it was found: its mode, requires_grad, gradients and the RNG state.
"""
from coupling import engine


def measure(model, input_ids, k=(10, 30, 50), tokens="last", spectrum="auto", device=None, *, embed=None,
            blocks=None, causal=None, context_pairs="", jacobian="auto", depth_band=0, max_memory=None):
    """Measures `model` on the probes `input_ids` (a tensor, or the path of a probe-ids file) once.

    model: a transformers model of a supported family (gpt2, gpt_neox, llama, mistral, bert), measured by the C++
      Hugging Face model on its live parameters; or any model with embed=, blocks= and causal= (generic path).
    k: K values (the default grid is capped at d; another K above d is an error); tokens: "last", "all", an
      index or a list (negative = from the end); spectrum: "auto", "exact" or "randomized"; jacobian: "auto",
      "materialised" or "matrix-free"; depth_band: couple only blocks at most this far apart (0 = all).
    device: where to measure (default: where the model's parameters are; a transformers model's tensors are
      copied there, the generic path's callables must run there).
    max_memory: refuse (ValueError) when the estimated peak exceeds this (bytes or "4G"; default: what the host
      has). Bad input raises ValueError with one sentence; nothing is measured then.
    """
    live = engine.Model(model, embed=embed, blocks=blocks, causal=causal, device=device)
    probes = engine.probe_tensor(input_ids)
    live.check_probes(probes)
    measurement_options = engine.options(k, tokens, spectrum, context_pairs, jacobian, depth_band)
    measurement_options.progress_seconds = 0.0
    with live.left_as_found():
        result = engine.load().measure(live.adapter, probes.to(live.device()), measurement_options,
                                       engine.memory_bytes(max_memory))
    return engine.dataset(result, model=live.name, model_config=live.config_text,
                          engine_config=str(measurement_options))
