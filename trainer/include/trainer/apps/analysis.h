// coupling-analyze: coupling measurements of saved models, written as one HDF5 log of the
// standard schema (the step axis holds the models' steps), so scripts/plot_coupling.py reads it.
// Re-running continues: steps already in the log are skipped.
//  - analyze_checkpoints: every checkpoint of a bundled-trainer run (GPT or ViT), in step order,
//    with the run's own probes and measurement options, so the numbers match its training-time log.
//  - analyze_torchscript: models exported from PyTorch (coupling/models/torchscript_model.h), one per
//    step, on probes from a text file, an IDX image file or a saved tensor.
//  - analyze_hf: Hugging Face model directories (a series of training checkpoints, or one model),
//    natively (coupling/models/hf/), on token ids from a file.
#pragma once

#include "trainer/loop/run_config.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace trainer {

struct AnalysisResult {
  std::string log_path;
  int64_t measured = 0;  ///< models measured now
  int64_t skipped = 0;   ///< models whose step was already in the log
};

/// Measures the checkpoints under run_dir/checkpoints into `log_path` (empty: run_dir/analysis.h5).
/// Throws coupling::CheckpointError when there are no checkpoints or one is unreadable,
/// coupling::ConfigError when the checkpoints hold different models, coupling::LogError when an
/// existing log belongs to another analysis.
/// Models and probes live on `device` while measured.
AnalysisResult analyze_checkpoints(const std::string& run_dir, const std::string& log_path = "",
                                   c10::Device device = c10::Device(c10::kCPU));

/// Where the probe inputs of a TorchScript analysis come from: exactly one source.
struct ProbeSource {
  std::string text;    ///< byte tokens: `count` seeded windows of `length` bytes from the file's last 10%
  std::string idx;     ///< an IDX image file: `count` seeded images as float [P, 1, H, W] in [0, 1]
  std::string tensor;  ///< a tensor saved with torch.save: used as it is
  int64_t count = 8;
  int64_t length = 64;
  uint64_t seed = 1;
};

/// The probe inputs `source` describes. Throws coupling::ConfigError unless exactly one source
/// is given, coupling::DataError / IoError when it cannot be read.
at::Tensor load_probes(const ProbeSource& source);

/// Measures TorchScript models into `log_path`. `paths` are files, or directories whose *.pt
/// files are taken; each file's step is the last number in its name (step_1200.pt -> 1200; a
/// single file without one is step 0). `coupling` gives --k, --tokens and --spectrum.
/// Throws coupling::ConfigError on a file without a step, two files with one step, or a module
/// that breaks the convention.
AnalysisResult analyze_torchscript(const std::vector<std::string>& paths, const ProbeSource& probes,
                                   const CouplingConfig& coupling, const std::string& log_path,
                                   c10::Device device = c10::Device(c10::kCPU));

/// Measures Hugging Face model directories (coupling-analyze --hf; coupling/models/hf/) into
/// `log_path`, on the token ids of `probe_ids_path` (trainer/data/probe_ids.h). A directory's step
/// comes from its name (step143000, step_1000, checkpoint-500); a single directory without one
/// takes `step` (default 0). Every directory must hold the same architecture. The log records
/// the family and config (model_config), each step's directory (model_sources) and the ids (/probes).
/// Throws coupling::ConfigError (a family or option not implemented, a step that cannot be told,
/// two directories for one step, different architectures), coupling::DataError (unreadable files).
AnalysisResult analyze_hf(const std::vector<std::string>& dirs, const std::string& probe_ids_path,
                          const CouplingConfig& coupling, const std::string& log_path,
                          std::optional<int64_t> step = std::nullopt, c10::Device device = c10::Device(c10::kCPU));

}  // namespace trainer
