// CouplingCallback: the training-time instrument. Add it to a loop's callbacks and it measures
// the model (through its ModelAdapter) on fixed probe inputs at the scheduled steps, writing
// every measurement and the training scalars to a crash-safe HDF5 log (coupling_log.h).
//
//   auto cb = std::make_shared<coupling::CouplingCallback>(adapter, probes, options);
//   callbacks.add(cb);          // then call the hooks from the loop (docs/callbacks.md)
//
// Its hooks follow callback.h; overhead accounting and deferral (max_overhead): docs/callbacks.md.
// Data-parallel: give every rank a callback with the same probes and options.communicator; the
// ranks share each measurement, and rank 0 alone writes the log and decides deferrals.
#pragma once

#include "coupling/dist/communicator.h"
#include "coupling/dist/distributed_measurement.h"
#include "coupling/engine/measurement.h"
#include "coupling/engine/memory_estimate.h"
#include "coupling/engine/model_adapter.h"
#include "coupling/log/coupling_log.h"
#include "coupling/training/callback.h"
#include "coupling/training/schedule.h"

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>

namespace coupling {

struct CouplingCallbackOptions {
  std::string log_path;  ///< the HDF5 log (created fresh, or resumed with the run)
  /// The key of its checkpoint state: give two coupling callbacks of one list names of their own.
  std::string name = "coupling";
  MeasurementOptions measurement;
  MeasurementSchedule schedule;
  double max_overhead = 0.0;    ///< measurement time / training time cap (0 = no cap)
  std::string model = "model";  ///< stored in the log
  std::string model_config;     ///< stored in the log; must match on resume
  int64_t seed = 0;
  std::string data_sha256;                  ///< of the training data, stored in the log; must match on resume
  std::string training_precision = "fp32";  ///< stored in the log (measurements always run in fp32)
  /// A resumed run's changed optimisation ("lr 0.002 -> 0.001"), recorded in the log; or empty.
  std::string resume_note;
  /// The data-parallel job this callback runs in (must outlive the callback); null = one process.
  Communicator* communicator = nullptr;
  /// The memory check of on_setup (memory_estimate.h): what training holds besides the model's
  /// tensors (gradients, optimizer state, activations; bytes), the ranks sharing this host, and
  /// a lower limit than what the host has (bytes), if any.
  int64_t training_bytes = 0;
  int64_t ranks_on_host = 1;
  std::optional<int64_t> max_memory_bytes;
};

class CouplingCallback : public TrainingCallback {
 public:
  /// Throws coupling::ConfigError when probe_inputs is empty.
  CouplingCallback(std::shared_ptr<ModelAdapter> adapter, at::Tensor probe_inputs, CouplingCallbackOptions options);

  /// Checks the measurement's layout (size cap, tokens, K) against the model and its estimated
  /// memory against the host's (a ConfigError naming both), and resumes the log of a resumed run
  /// (refusing one of another run, layout or schema version).
  std::string name() const override { return options_.name; }
  void on_setup(const TrainBegin& begin) override;
  void on_train_begin(const TrainBegin& begin) override;
  void on_step_end(const StepEnd& step) override;
  void on_eval(const EvalResult& eval) override;
  void on_checkpoint_save(int64_t step, CallbackState& state) override;
  void on_checkpoint_load(int64_t step, const CallbackState& state) override;

  /// Writes a /train row (step counts updates from 0) for a loop that reports its training
  /// scalars apart from its steps (StepEnd::with_training_row(false)): Hugging Face's Trainer
  /// knows its loss only when it logs. Rank 0 only; nothing before the log exists.
  void record_training(const TrainingRecord& record);

  /// The first and the latest measurement of this session (for summaries), if any.
  const std::optional<Measurement>& first() const { return first_; }
  const std::optional<Measurement>& latest() const { return latest_; }
  /// Total measurement seconds (whole run).
  double measure_seconds() const { return measure_seconds_; }
  /// measure_seconds() / (wall_seconds - measure_seconds()): measurement per training second.
  double overhead_fraction(double wall_seconds) const;

 private:
  void measure_now(int64_t step, int64_t scheduled_step, int64_t tokens_seen, double wall_seconds);
  bool writes_log() const { return options_.communicator == nullptr || options_.communicator->rank() == 0; }
  /// Whether to defer the pending measurement: rank 0's judgement, shared with every rank.
  bool defer(const StepEnd& step);
  LogMetadata log_metadata() const;

  std::shared_ptr<ModelAdapter> adapter_;
  at::Tensor probes_;
  CouplingCallbackOptions options_;
  std::optional<CouplingLog> log_;
  std::optional<Measurement> first_, latest_;
  double measure_seconds_ = 0.0;               ///< summed over the run (restored on resume)
  double last_measure_seconds_ = 0.0;          ///< cost estimate for the next one
  double training_at_last_measurement_ = 0.0;  ///< training seconds (no measurements) at the last one
  bool set_up_ = false;
  std::optional<MeasurementLayout> layout_;  ///< checked in on_setup
  std::optional<MemoryEstimate> memory_;     ///< estimated in on_setup
  std::optional<int64_t> state_missing_at_;  ///< a checkpoint without this callback's state
  int64_t pending_since_ = -1;               ///< scheduled step of a deferred measurement, or -1
};

}  // namespace coupling
