"""libcoupling's Python side: the one reader of coupling logs, plots, study statistics, checkpoints.

    from coupling.log import open_log, tidy      # a log as an xarray.Dataset / a pandas table
    from coupling import safetensors             # checkpoints with numpy alone

Modules: log (the HDF5 log reader: open_log, tidy, differ, arrays, row checks), intervals (95% intervals of
probe means, paired across steps, as the C++ engine draws them), plot (figures of a log),
study, plot_study, study_grid (coupling-vs-generalisation studies), schedule_density (how dense a
measurement schedule must be), minilm_study, safetensors. Each command-line module has a console
entry point (coupling-log, coupling-plot, coupling-study, ...) and a wrapper under scripts/ with
its old name. Pure Python: numpy, h5py, matplotlib, scipy, pandas and xarray where a module needs them.
"""
__version__ = "0.1.0"
