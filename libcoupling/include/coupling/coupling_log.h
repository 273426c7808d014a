// The coupling log: one crash-safe HDF5 file per run with every measurement as a curve over
// training steps, plus the training scalars (docs/hdf5-schema.md). Python reads it live with
// h5py.File(path, "r", swmr=True, libver="latest"). HDF5 stays behind a pimpl: this header
// does not include hdf5.h.
//
// Crash safety: every append is flushed; once the measurement datasets exist the file is in
// SWMR mode, so a killed writer leaves a readable file with every completed row. resume()
// clears the consistency flags a crash leaves behind, checks the run's identity, drops rows
// newer than the checkpoint being resumed and continues.
#pragma once

#include "coupling/measurement.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace coupling {

/// What identifies a run's log; stored as root attributes, compared on resume.
struct LogMetadata {
  std::string model;          ///< "gpt", "vit", or the user's name for their model
  std::string model_config;   ///< text describing the model/run (e.g. its config.toml); must match on resume
  std::string engine_config;  ///< describe(options) of the measurement options; must match on resume
  int64_t seed = 0;
  int64_t world_size = 1;
  at::Tensor probes;          ///< the probe inputs, stored once as /probes
  std::string training_precision = "fp32";  ///< of the training forward passes (fp32 or bf16)
};

/// Canonical one-line text of measurement options (K grid, tokens, estimator, p, q, precision).
std::string describe(const MeasurementOptions& options);

/// Per-measurement bookkeeping stored beside the metrics.
struct MeasurementRecord {
  int64_t step = 0;             ///< optimizer updates completed
  int64_t scheduled_step = 0;   ///< when the schedule asked for it (< step when the overhead budget deferred it)
  int64_t tokens_seen = 0;
  double wall_seconds = 0.0;    ///< run wall time when the measurement started
  double measure_seconds = 0.0; ///< wall time of this measurement
  double train_seconds = 0.0;   ///< training wall time since the previous measurement
};

/// One training-loss row (at the trainer's own cadence).
struct TrainingRecord {
  int64_t step = 0;  ///< 0-based index of the update whose batch loss this is
  double loss = 0.0;
  double lr = 0.0;
  int64_t tokens_seen = 0;
  double wall_seconds = 0.0;
};

class CouplingLog {
 public:
  static constexpr int64_t kSchemaVersion = 1;

  /// Creates a new log. Throws coupling::IoError if `path` exists (never overwrites), is a
  /// directory, or cannot be written.
  static CouplingLog create(const std::string& path, const LogMetadata& metadata);

  /// Reopens a log to continue a run from the checkpoint at `last_step`: repairs a crashed
  /// writer's consistency flags, throws coupling::LogError (file untouched) when it is not a
  /// libcoupling log, is corrupt, has a newer schema, or `metadata` differs; then drops
  /// measurement and eval rows with step > last_step and training rows with step >= last_step
  /// (last_step = INT64_MAX keeps every row: continuing a post-hoc analysis).
  static CouplingLog resume(const std::string& path, const LogMetadata& metadata, int64_t last_step);

  CouplingLog(CouplingLog&&) noexcept;
  CouplingLog& operator=(CouplingLog&&) noexcept;
  ~CouplingLog();

  /// Appends one measurement (steps must increase). The first one fixes the shapes.
  void append(const MeasurementRecord& record, const Measurement& measurement);
  void append_training(const TrainingRecord& record);
  void append_eval(int64_t step, double val_loss);

  /// Steps of the measurements in the log, in order.
  std::vector<int64_t> measured_steps() const;
  const std::string& path() const;

 private:
  struct Impl;
  explicit CouplingLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coupling
