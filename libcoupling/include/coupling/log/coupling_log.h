// The coupling log: one crash-safe HDF5 file per run with every measurement as a curve over
// training steps, plus the training scalars (docs/hdf5-schema.md). Python reads it live with
// h5py.File(path, "r", swmr=True, libver="latest"). HDF5 stays behind a pimpl: this header
// does not include hdf5.h.
//
// Crash safety: every append is flushed; once the measurement datasets exist (at creation when
// the layout is given) the file is in SWMR mode, so a killed writer leaves a readable file with
// every completed row. resume()
// clears the consistency flags a crash leaves behind, checks the run's identity, drops rows
// newer than the checkpoint being resumed and continues.
#pragma once

#include "coupling/engine/measurement.h"
#include "coupling/log/records.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace coupling {

/// What identifies a run's log; stored as root attributes, compared on resume.
struct LogMetadata {
  std::string model;          ///< "gpt", "vit", or the user's name for their model
  std::string model_config;   ///< text describing the model/run (e.g. its config.toml); must match on resume
  std::string engine_config;  ///< MeasurementOptions::str(); must match on resume
  int64_t seed = 0;
  int64_t world_size = 1;
  at::Tensor probes;                        ///< the probe inputs, stored once as /probes
  std::string training_precision = "fp32";  ///< of the training forward passes (fp32 or bf16)
  /// On resume: a line appended to the root attribute `resume_overrides` (what a resumed run
  /// changed, e.g. "step 120: lr 0.002 -> 0.001"); empty = nothing.
  std::string resume_note;
  /// SHA-256 of the training data (root attribute `data_sha256`); must match on resume. Empty =
  /// unknown: not written, and not checked (nor is a log without the attribute).
  std::string data_sha256;
  /// Where each step's model came from, as "step N: SOURCE" lines (root attribute
  /// `model_sources`, e.g. the directories of a post-hoc analysis). Not compared on resume: its
  /// lines that the log lacks are appended. Empty = none.
  std::string sources;
};

/// The schema tables of docs/hdf5-schema.md (dimension scales, record columns, fields),
/// rendered from the field registry and the records; a test keeps the docs equal to it.
std::string schema_markdown();

class CouplingLog {
 public:
  /// docs/hdf5-schema.md "Versions"; 4 added the uncoupled null and layer linearity. Older logs
  /// are read by the Python tools; resume() refuses them, naming both versions.
  static constexpr int64_t kSchemaVersion = 4;

  /// Creates a new log. With the measurements' layout, every dataset is created at once and the
  /// file is in SWMR mode from the start (a writer killed at any point leaves a readable file);
  /// without it, the first append() creates them. Throws coupling::IoError if `path` exists
  /// (never overwrites), is a directory, or cannot be written.
  static CouplingLog create(const std::string& path, const LogMetadata& metadata,
                            const std::optional<MeasurementLayout>& layout = std::nullopt);

  /// Reopens a log to continue a run from the checkpoint at `last_step`: repairs a crashed
  /// writer's consistency flags, throws coupling::LogError (file untouched) when it is not a
  /// libcoupling log, is corrupt, has a newer schema, or `metadata` differs; then drops
  /// measurement and eval rows with step > last_step and training rows with step >= last_step
  /// (last_step = INT64_MAX keeps every row: continuing a post-hoc analysis). A run resumed from
  /// its step-0 checkpoint (last_step = 0) measures step 0 again, so its step-0 row goes too.
  /// With `layout`, the log's measurement datasets must be exactly those the registry logs for
  /// it, with its shapes (checked before anything is changed).
  static CouplingLog resume(const std::string& path, const LogMetadata& metadata, int64_t last_step,
                            const std::optional<MeasurementLayout>& layout = std::nullopt);

  CouplingLog(CouplingLog&&) noexcept;
  CouplingLog& operator=(CouplingLog&&) noexcept;
  ~CouplingLog();

  /// Appends one measurement (steps must increase). The first one fixes the shapes.
  void append(const MeasurementRecord& record, const Measurement& measurement);
  void append_training(const TrainingRecord& record);
  void append_eval(const EvalRecord& record);

  /// Steps of the measurements in the log, in order.
  std::vector<int64_t> measured_steps() const;
  const std::string& path() const;

 private:
  struct Impl;
  explicit CouplingLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coupling
