// The rows of the coupling log besides the measured fields: per-measurement bookkeeping, the
// training loss and the held-out loss. Each record lists its columns once, in visit(), which
// the log walks to create, append, truncate and document them (docs/hdf5-schema.md). The
// first column of each record is its step, the row axis of its group.
#pragma once

#include <cstdint>

namespace coupling {

/// One column of a record: dataset name, units ("1" = dimensionless) and description.
struct Column {
  const char* name;
  const char* units;
  const char* description;
};

/// Per-measurement bookkeeping stored beside the fields, in /measurement.
struct MeasurementRecord {
  int64_t step = 0;            ///< optimizer updates completed
  int64_t scheduled_step = 0;  ///< when the schedule asked for it (< step when the overhead budget deferred it)
  int64_t tokens_seen = 0;
  double wall_seconds = 0.0;     ///< run wall time when the measurement started
  double measure_seconds = 0.0;  ///< wall time of this measurement
  double train_seconds = 0.0;    ///< pure training time (no measurement) since the previous measurement
  double peak_rss_mib = 0.0;     ///< set by the log from Measurement::peak_rss_mib
  int8_t nonfinite = 0;          ///< set by the log: 1 when some logged value is NaN or infinite

  static constexpr const char* kGroup = "/measurement";
  template <class Record, class Visitor>
  static void visit(Record& r, Visitor&& v) {
    v(Column{"step", "updates", "optimizer updates completed at the measurement"}, r.step);
    v(Column{"scheduled_step", "updates", "step the schedule asked for; < step when the overhead budget deferred it"},
      r.scheduled_step);
    v(Column{"tokens_seen", "items", "training items (tokens or images) seen at the measurement"}, r.tokens_seen);
    v(Column{"wall_seconds", "s", "run wall time when the measurement started, measurements included"}, r.wall_seconds);
    v(Column{"measure_seconds", "s", "wall time of the measurement"}, r.measure_seconds);
    v(Column{"train_seconds", "s", "training time since the previous measurement, measurements excluded"},
      r.train_seconds);
    v(Column{"peak_rss_mib", "MiB",
             "peak resident memory of the process during the measurement, file-backed pages included (the maximum "
             "over ranks)"},
      r.peak_rss_mib);
    v(Column{"nonfinite", "1",
             "1 when some value of this measurement is NaN or infinite (but layer_linearity's NaN below d + 1 "
             "probe tokens)"},
      r.nonfinite);
  }
};

/// One training-loss row, in /train (at the trainer's own cadence).
struct TrainingRecord {
  int64_t step = 0;  ///< 0-based index of the update whose batch loss this is
  double loss = 0.0;
  double lr = 0.0;
  int64_t tokens_seen = 0;
  double wall_seconds = 0.0;

  static constexpr const char* kGroup = "/train";
  template <class Record, class Visitor>
  static void visit(Record& r, Visitor&& v) {
    v(Column{"step", "updates", "0-based index of the update whose batch loss this is"}, r.step);
    v(Column{"loss", "nats", "training loss of the update's batch"}, r.loss);
    v(Column{"lr", "1", "learning rate of the update"}, r.lr);
    v(Column{"tokens_seen", "items", "training items (tokens or images) seen after the update"}, r.tokens_seen);
    v(Column{"wall_seconds", "s", "run wall time after the update, measurements included"}, r.wall_seconds);
  }
};

/// One held-out evaluation, in /eval.
struct EvalRecord {
  int64_t step = 0;  ///< updates completed
  double val_loss = 0.0;

  static constexpr const char* kGroup = "/eval";
  template <class Record, class Visitor>
  static void visit(Record& r, Visitor&& v) {
    v(Column{"step", "updates", "optimizer updates completed at the evaluation"}, r.step);
    v(Column{"val_loss", "nats", "held-out loss (ViT: the test loss)"}, r.val_loss);
  }
};

}  // namespace coupling
