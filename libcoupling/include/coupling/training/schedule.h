// When to measure during training. Step 0 (the random-initialisation baseline) and the final
// step are always measured; on top of that: every N steps, N log-spaced steps (dense early,
// where emergence happens), an explicit list, and/or every checkpoint.
//
// Text form (CLI --measure-schedule, log metadata): space-separated items
//   "every:N"  "log:N"  "steps:A,B,C"  "checkpoints"        e.g. "log:12 checkpoints"
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace coupling {

struct MeasurementSchedule {
  int64_t every = 0;       ///< every N steps (0 = off)
  int64_t log_points = 0;  ///< N log-spaced steps in [1, total] (0 = off)
  std::vector<int64_t> steps;
  bool at_checkpoints = false;

  /// Throws coupling::ConfigError with the accepted syntax on a bad item.
  static MeasurementSchedule parse(const std::string& text);
  std::string str() const;

  /// Whether step `step` (updates completed) of a `total`-step run is a measurement step.
  bool due(int64_t step, int64_t total, bool checkpoint) const;
  /// All due steps of a run without checkpoints taken into account (for planning and logs).
  std::vector<int64_t> planned(int64_t total) const;
};

}  // namespace coupling
