// coupling-analyze: coupling measurements of saved models, written as one HDF5 log of the
// standard schema (the step axis holds the models' steps), so scripts/plot_coupling.py reads it.
// Re-running continues: steps already in the log are skipped.
// An analysis is planned, then run. Planning reads and checks every input (no log is touched):
//  - plan_checkpoints: every checkpoint of a bundled-trainer run (GPT or ViT), in step order,
//    with the run's own probes and measurement options, so the numbers match its training-time log.
//  - plan_torchscript: models exported from PyTorch (coupling/models/torchscript_model.h), one per
//    step, on probes from a text file, an IDX image file or a saved tensor.
//  - plan_hf: Hugging Face model directories (a series of training checkpoints, or one model),
//    natively (coupling/models/hf/), on token ids from a file.
// run_analysis then measures the plan on one process or on the ranks of a data-parallel job
// (they share each model's probes; rank 0 writes the log).
#pragma once

#include "coupling/dist/communicator.h"
#include "coupling/engine/measurement.h"
#include "coupling/engine/memory_estimate.h"
#include "coupling/log/coupling_log.h"
#include "trainer/loop/run_config.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace trainer {

/// One saved model of a series: its step, where it is, and how to make it the current model of
/// an adapter (what the loader keeps alive, it owns).
struct SavedModel {
  int64_t step;
  std::string path;
  std::function<coupling::ModelAdapter&()> load;
};

/// What an analysis measures, every input read and checked: the log, its metadata, the models
/// in step order (each loaded when measured) and the measurement options.
struct AnalysisPlan {
  std::string log_path;
  coupling::LogMetadata metadata;
  std::vector<SavedModel> models;
  coupling::MeasurementOptions options;
  int64_t items_per_step = 0;       ///< training items a step (the log's tokens_seen); 0 = unknown
  coupling::MemoryEstimate memory;  ///< the peak of measuring one model (checked before the log is touched)
};

struct AnalysisResult {
  std::string log_path;
  int64_t measured = 0;  ///< models measured now
  int64_t skipped = 0;   ///< models whose step was already in the log
};

/// Plans the checkpoints under run_dir/checkpoints into `log_path` (empty: run_dir/analysis.h5).
/// Throws coupling::CheckpointError when there are no checkpoints or one is unreadable,
/// coupling::ConfigError when the checkpoints hold different models.
/// Models and probes live on `device` while measured.
AnalysisPlan plan_checkpoints(const std::string& run_dir, const std::string& log_path = "",
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

/// Plans TorchScript models into `log_path`. `paths` are files, or directories whose *.pt
/// files are taken; each file's step is the last number in its name (step_1200.pt -> 1200; a
/// single file without one is step 0). `coupling` gives --k, --tokens and --spectrum.
/// Throws coupling::ConfigError on a file without a step, two files with one step, or a module
/// that breaks the convention.
AnalysisPlan plan_torchscript(const std::vector<std::string>& paths, const ProbeSource& probes,
                              const CouplingConfig& coupling, const std::string& log_path,
                              c10::Device device = c10::Device(c10::kCPU));

/// Plans Hugging Face model directories (coupling-analyze --hf; coupling/models/hf/) into
/// `log_path`, on the token ids of `probe_ids_path` (trainer/data/probe_ids.h). A directory's step
/// comes from its name (step143000, step_1000, checkpoint-500); a single directory without one
/// takes `step` (default 0). Every directory must hold the same architecture. The log records
/// the family and config (model_config), each step's directory (model_sources) and the ids (/probes).
/// Throws coupling::ConfigError (a family or option not implemented, a step that cannot be told,
/// two directories for one step, different architectures), coupling::DataError (unreadable files).
AnalysisPlan plan_hf(const std::vector<std::string>& dirs, const std::string& probe_ids_path,
                     const CouplingConfig& coupling, const std::string& log_path,
                     std::optional<int64_t> step = std::nullopt, c10::Device device = c10::Device(c10::kCPU));

/// Measures every model of `plan` whose step the log does not hold yet, in step order, and
/// prints the end-of-run summary (probe means with paired 95% intervals, probe_bootstrap.h).
/// With a communicator, every rank of the job calls it with the same plan (checked: a
/// coupling::ConfigError on every rank names what differs); the ranks share each model's probes
/// and rank 0 alone writes the log. A failure on one rank (the log cannot be written, a model
/// cannot be loaded) stops every rank at once. Throws coupling::LogError when an existing log
/// belongs to another analysis, coupling::ConfigError when a model is older than the log's last step.
AnalysisResult run_analysis(const AnalysisPlan& plan, c10::Device device = c10::Device(c10::kCPU),
                            coupling::Communicator* communicator = nullptr);

}  // namespace trainer
