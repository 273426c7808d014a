// The training loop shared by the bundled trainers (GPT, ViT): AdamW with warm-up + cosine
// decay, gradient clipping, periodic evaluation, atomic checkpoints, exact resume, CSV logs,
// summary.json, the coupling instrumentation, and data-parallel training across the ranks of a
// coupling::Communicator. What differs between models (data, loss, evaluation, probes) is a
// TrainingTask. See docs/trainer.md and docs/distributed.md.
#pragma once

#include "coupling/engine/measurement.h"
#include "coupling/engine/model_adapter.h"
#include "trainer/loop/run_config.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace coupling {
class Communicator;
}
namespace torch::nn {
class Module;
}

namespace trainer {

using Metric = std::pair<std::string, double>;

/// A model and its data, as the shared loop needs them. Every rank builds the same task.
class TrainingTask {
 public:
  virtual ~TrainingTask() = default;

  virtual torch::nn::Module& model() = 0;
  /// Moves the model to `device`, where the task then puts its batches too (the loop calls this
  /// once, before the optimizer is made).
  void to(c10::Device device);
  c10::Device device() const { return device_; }

  /// One log line describing the model (shape, parameters).
  virtual std::string describe() const = 0;
  /// What the loop counts in "<unit>_seen" and "<unit>_per_second": "tokens" or "images".
  virtual std::string unit() const = 0;
  virtual int64_t items_per_step(int64_t global_batch) const = 0;
  /// Bytes of the activations a training step of `examples` examples keeps for its backward pass
  /// (the memory check's estimate: transformer_activation_bytes).
  virtual int64_t training_activation_bytes(int64_t examples) const = 0;

  /// The loss of this rank's shard (shard of shards) of the next global batch of `batch`
  /// examples: train mode, graph attached. Advances the task's sampler.
  virtual at::Tensor training_loss(int64_t batch, int64_t shard, int64_t shards) = 0;
  /// The sampler's state as text, for checkpoints ("" when it follows from the step alone).
  virtual std::string sampler_state() const = 0;
  virtual void restore_sampler_state(const std::string& state, int64_t step) = 0;

  /// Held-out metrics, summed over the ranks when a communicator is given. The first is the
  /// held-out loss handed to the callbacks (and the coupling log's /eval).
  virtual std::vector<Metric> evaluate(coupling::Communicator* communicator) = 0;
  /// Metrics for summary.json at the end of the run (besides the last evaluate()).
  virtual std::vector<Metric> final_metrics(coupling::Communicator* communicator) = 0;

  /// The fixed probe inputs of the coupling measurements, a seeded choice of held-out examples.
  virtual at::Tensor probes(int64_t count, uint64_t seed) const = 0;
  virtual std::shared_ptr<coupling::ModelAdapter> adapter() = 0;
  /// The measurement-relevant model shape, stored in the coupling log (must match on resume).
  virtual std::string model_config_text(int64_t probes) const = 0;
  /// SHA-256 of the training data: checkpoints and the coupling log record it, and a resume on
  /// other data is refused.
  virtual std::string data_sha256() const = 0;
  /// Named tokens the --tokens flag may use (e.g. "cls" -> 0), besides last/all/integers.
  virtual std::map<std::string, int64_t> token_names() const { return {}; }

 private:
  c10::Device device_{c10::kCPU};
};

/// What summary.json records about a finished run.
struct TrainSummary {
  int64_t final_step = 0;
  double items_per_second = 0.0;  ///< tokens (GPT) or images (ViT) per second, this session
  double wall_seconds = 0.0;      ///< training wall time, summed over resumed sessions
  int64_t parameters = 0;
  double measure_seconds = 0.0;           ///< coupling measurements, whole run
  double overhead_fraction = 0.0;         ///< measure_seconds / (wall_seconds - measure_seconds)
  int64_t world_size = 1;                 ///< data-parallel ranks
  double communication_seconds = 0.0;     ///< this session's gradient and loss all-reduces
  std::map<std::string, double> metrics;  ///< val_loss, test_accuracy, ... (the task's)

  /// metrics.at(name), or a coupling::Error naming the missing metric.
  double metric(const std::string& name) const;
};

/// Where the training files of a run live.
struct RunPaths {
  explicit RunPaths(const std::string& out);
  std::string out, config, train_log, eval_log, summary, coupling_log;
};

/// The engine options of a run's --k, --tokens (with the task's token names) and --spectrum.
/// Throws coupling::ConfigError naming the flag.
coupling::MeasurementOptions measurement_options(const CouplingConfig& coupling,
                                                 const std::map<std::string, int64_t>& token_names);

/// Builds the task (validating the model's own options and loading its data); called on every
/// rank after the config comparison, with the LibTorch generator seeded from the run's seed so
/// the model initialises identically everywhere.
using TaskFactory = std::function<std::unique_ptr<TrainingTask>()>;

/// A run as the shared loop sees it: the common options and the whole config as text.
struct RunDefinition {
  TrainConfig train;
  CouplingConfig coupling;
  std::string model_kind;  ///< "gpt" or "vit": summary.json and the coupling log
  std::string config_toml;
  std::vector<std::pair<std::string, std::string>> config_fields;  ///< compared across ranks
};

template <class RunConfig>
RunDefinition run_definition(const RunConfig& config) {
  return {config.train, config.coupling, RunConfig::kModel, to_toml(config), config_fields(config)};
}

/// Trains `make_task()`'s model in run.train.out. With `resume`, continues from the newest
/// checkpoint there. With a `communicator`, every rank of the job calls this with the same run:
/// data-parallel training where run.train.batch is the global batch and rank 0 writes every file.
/// Throws coupling::Error subclasses on bad input, I/O failures, divergence and failed collectives.
TrainSummary run_training(const RunDefinition& run, const TaskFactory& make_task, bool resume,
                          coupling::Communicator* communicator);

/// The configuration of a run resumed from `run_dir`: its newest checkpoint's config, with the
/// flags in `explicit_flags` taken from `requested` where merge_for_resume allows. Throws
/// coupling::CheckpointError when there is no checkpoint, coupling::ConfigError on a conflict.
template <class RunConfig>
RunConfig config_for_resume(const std::string& run_dir, const RunConfig& requested,
                            const std::set<std::string>& explicit_flags, bool allow_override = false);

}  // namespace trainer
