"""libcoupling's Python side: the one reader of coupling logs, plots, study statistics, checkpoints.

    from coupling.log import open_log, tidy      # a log as an xarray.Dataset / a pandas table
    from coupling import safetensors             # checkpoints with numpy alone
    coupling.measure(model, input_ids)           # the C++ engine in this process (docs/python.md)
    coupling.Monitor(log, model, probe_ids, ...) # ... in a training loop; coupling.hf: in a transformers Trainer

Modules: engine (the compiled engine coupling._engine, built by scripts/build.sh --torch pip), live
(measure), monitor (Monitor), hf (CouplingCallback for transformers.Trainer), log (the HDF5 log reader: open_log, tidy, differ, arrays, row checks), intervals (95% intervals of
probe means, paired across steps, as the C++ engine draws them), plot (figures of a log),
study, plot_study, study_grid (coupling-vs-generalisation studies), schedule_density (how dense a
measurement schedule must be), minilm_study, safetensors. Each command-line module has a console
entry point (coupling-log, coupling-plot, coupling-study, ...) and a wrapper under scripts/ with
its old name. Pure Python: numpy, h5py, matplotlib, scipy, pandas and xarray where a module needs them.
"""
__version__ = "0.1.0"


def __getattr__(name):
    """coupling.measure and coupling.Monitor, the compiled engine's entry points, load it on first use only."""
    if name == "measure":
        from coupling.live import measure
        return measure
    if name == "Monitor":
        from coupling.monitor import Monitor
        return Monitor
    raise AttributeError(f"module 'coupling' has no attribute '{name}'")
