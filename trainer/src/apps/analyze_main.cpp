// coupling-analyze: coupling measurements of saved models (docs/analysis.md).
//   coupling-analyze --checkpoints RUN_DIR [--out LOG]
//       every checkpoint of a coupling-train run (GPT or ViT), with the run's own probes and
//       options, into LOG (default RUN_DIR/analysis.h5)
//   coupling-analyze --torchscript FILE|DIR [...] --out LOG (--probe-text F | --probe-idx F | --probe-tensor F)
//       [--probes 8] [--length 64] [--seed 1] [--k 10,30,50] [--tokens last] [--spectrum auto]
//       models exported from PyTorch (coupling/engine/torchscript_model.h), step = last number in the name
// The log has the standard schema (scripts/plot_coupling.py reads it); re-running skips the
// steps it holds. Errors: one line, exit status 2.
#include "coupling/engine/device.h"
#include "coupling/error.h"
#include "trainer/apps/analysis.h"
#include "trainer/apps/exit_status.h"
#include "trainer/loop/runtime.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  trainer::reexec_with_tuned_openblas(argv);
  spdlog::set_pattern("[%H:%M:%S] [%^%l%$] %v");
  CLI::App app("coupling-analyze: coupling measurements of saved models");
  std::string run_dir, log_path;
  std::vector<std::string> torchscript;
  trainer::ProbeSource probes;
  trainer::CouplingConfig coupling;
  int64_t threads = 0;
  std::string device_spec = "auto";
  auto* checkpoints = app.add_option("--checkpoints", run_dir, "A coupling-train run directory: measure its checkpoints");
  auto* scripts = app.add_option("--torchscript", torchscript,
                                 "TorchScript model files, or directories of *.pt files (repeatable)");
  checkpoints->excludes(scripts);
  app.add_option("--out", log_path, "The HDF5 log (--checkpoints: default RUN_DIR/analysis.h5); an existing one is "
                                    "continued");
  // The TorchScript route's measurement options; --checkpoints measures with the run's own.
  const std::vector<CLI::Option*> torchscript_only = {
      app.add_option("--k", coupling.k, "K grid, each <= d (TorchScript; default 10,30,50 capped at d)"),
      app.add_option("--tokens", coupling.tokens, "Measured tokens: last, all or a list (TorchScript)")
          ->capture_default_str(),
      app.add_option("--context-pairs", coupling.context_pairs, "INPUT:OUTPUT token pairs for context coupling "
                                                                "(TorchScript), e.g. 0:-1,5:-1"),
      app.add_option("--spectrum", coupling.spectrum, "auto, exact or randomized (TorchScript)")->capture_default_str(),
      app.add_option("--probe-text", probes.text, "TorchScript probes: byte windows of this text file"),
      app.add_option("--probe-idx", probes.idx, "TorchScript probes: images of this IDX file, in [0, 1]"),
      app.add_option("--probe-tensor", probes.tensor, "TorchScript probes: a tensor saved with torch.save"),
      app.add_option("--probes", probes.count, "Probe count (text, IDX)")->capture_default_str(),
      app.add_option("--length", probes.length, "Probe length in bytes (text)")->capture_default_str(),
      app.add_option("--seed", probes.seed, "Seed of the probe choice")->capture_default_str()};
  app.add_option("--threads", threads, "Intra-op threads (0 = one per core)")->capture_default_str();
  app.add_option("--device", device_spec, std::string("Where to measure: ") + coupling::kDeviceChoices +
                                              " (auto: CUDA when a device is visible)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (run_dir.empty() && torchscript.empty()) {
      throw coupling::ConfigError("say what to analyse: --checkpoints RUN_DIR or --torchscript FILE|DIR");
    }
    if (!torchscript.empty() && log_path.empty()) throw coupling::ConfigError("--torchscript needs --out LOG");
    for (const auto* option : torchscript_only) {
      if (!run_dir.empty() && option->count() > 0) {
        throw coupling::ConfigError(option->get_name() + " does not apply to --checkpoints: a run's checkpoints are "
                                    "measured with the run's own probes and options (its config.toml); drop " +
                                    option->get_name());
      }
    }
    const c10::Device device = coupling::resolve_device(device_spec);
    trainer::setup_compute(threads);
    const auto result = torchscript.empty()
                            ? trainer::analyze_checkpoints(run_dir, log_path, device)
                            : trainer::analyze_torchscript(torchscript, probes, coupling, log_path, device);
    spdlog::info("{}: {} model(s) measured, {} already in the log", result.log_path, result.measured, result.skipped);
    return 0;
  } catch (...) {
    return trainer::report_failure("measure fewer probes or tokens");
  }
}
