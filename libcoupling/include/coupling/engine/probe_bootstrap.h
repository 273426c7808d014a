// 95% intervals of probe means that tell two steps apart: a percentile bootstrap over the probes.
// The resamples depend only on the probe count and a seed, never on the values, so every step
// of a log resamples the same probes: the bootstrap is paired across steps, and the interval of
// a difference between two steps is that of the per-probe differences. The generator (SplitMix64)
// and the quantile rule (linear interpolation, numpy's default) are pinned in docs/metrics.md,
// so the Python reader (coupling.intervals) draws the same resamples and prints the same numbers.
#pragma once

#include <cstdint>
#include <vector>

namespace coupling {

/// A probe mean and its interval; every value NaN when there is nothing to say (no finite
/// mean), and low = high = NaN when there are fewer than two probes.
struct Interval {
  double mean;
  double low;
  double high;
  /// Whether the interval excludes `value` (false while it is NaN).
  bool excludes(double value) const { return low > value || high < value; }
};

class ProbeBootstrap {
 public:
  static constexpr int64_t kResamples = 2000;
  static constexpr uint64_t kSeed = 2407078102;  ///< the paper's arXiv number
  static constexpr double kLevel = 0.95;

  /// The resamples of `probes` probes: `resamples` draws of `probes` indices with replacement.
  explicit ProbeBootstrap(int64_t probes, int64_t resamples = kResamples, uint64_t seed = kSeed);

  int64_t probes() const { return probes_; }
  /// The probe index at `position` of resample `resample` (what the tests pin across languages).
  int64_t index(int64_t resample, int64_t position) const;

  /// The mean of `per_probe` (one value per probe) and its central `level` interval. A NaN
  /// value makes every field NaN. Throws coupling::Error when the count is not probes().
  Interval interval(const std::vector<double>& per_probe, double level = kLevel) const;
  /// The interval of the mean difference `after - before`, probe by probe (paired).
  Interval difference(const std::vector<double>& before, const std::vector<double>& after, double level = kLevel) const;

 private:
  int64_t probes_;
  int64_t resamples_;
  std::vector<int64_t> indices_;  ///< resample-major: [resamples, probes]
};

}  // namespace coupling
