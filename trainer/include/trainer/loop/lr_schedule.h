// Learning-rate schedule of the bundled trainers: linear warm-up from 0 to the peak rate, then
// cosine decay to min_fraction * peak at the last step. Pure function of the step, so a resumed
// run follows exactly the same schedule.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace trainer {

struct LrSchedule {
  double peak = 1e-3;
  double min_fraction = 0.1;
  int64_t warmup = 0;
  int64_t total_steps = 1;

  /// Learning rate for the update with 0-based index `step`.
  double at(int64_t step) const {
    if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
    const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup);
    const double progress = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(decay_steps));
    const double floor = peak * min_fraction;
    return floor + (peak - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
};

}  // namespace trainer
