#include "coupling/engine/probe_bootstrap.h"

#include "coupling/error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace coupling {
namespace {

/// SplitMix64 (Steele, Lea and Flood 2014): the k-th output (k = 1, 2, ...) of the stream
/// started at `seed`. Counter-based, so numpy can draw the same stream in one vectorised step.
uint64_t splitmix64(uint64_t seed, uint64_t k) {
  uint64_t z = seed + k * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// numpy.quantile's default ("linear"): sorted[h] interpolated at h = (n - 1) q.
double quantile(const std::vector<double>& sorted, double q) {
  const double h = static_cast<double>(sorted.size() - 1) * q;
  const auto below = static_cast<size_t>(std::floor(h));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  return sorted[below] + (h - static_cast<double>(below)) * (sorted[above] - sorted[below]);
}

}  // namespace

ProbeBootstrap::ProbeBootstrap(int64_t probes, int64_t resamples, uint64_t seed)
    : probes_(probes), resamples_(resamples) {
  if (probes < 1 || resamples < 1) {
    throw Error("a probe bootstrap needs at least one probe and one resample (got " + std::to_string(probes) +
                " probes, " + std::to_string(resamples) + " resamples)");
  }
  indices_.resize(static_cast<size_t>(probes * resamples));
  for (size_t i = 0; i < indices_.size(); ++i) {
    indices_[i] = static_cast<int64_t>(splitmix64(seed, i + 1) % static_cast<uint64_t>(probes));
  }
}

int64_t ProbeBootstrap::index(int64_t resample, int64_t position) const {
  return indices_.at(static_cast<size_t>(resample * probes_ + position));
}

Interval ProbeBootstrap::interval(const std::vector<double>& per_probe, double level) const {
  if (static_cast<int64_t>(per_probe.size()) != probes_) {
    throw Error("a probe bootstrap of " + std::to_string(probes_) + " probes was given " +
                std::to_string(per_probe.size()) + " values");
  }
  if (!(level > 0.0 && level < 1.0))
    throw Error("an interval's level must lie in (0, 1) (got " + std::to_string(level) + ")");
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  double sum = 0.0;
  for (const double value : per_probe) sum += value;
  const double mean = sum / static_cast<double>(probes_);
  if (!std::isfinite(mean)) return {nan, nan, nan};
  if (probes_ < 2) return {mean, nan, nan};
  std::vector<double> means(static_cast<size_t>(resamples_));
  for (int64_t b = 0; b < resamples_; ++b) {
    double resampled = 0.0;
    for (int64_t i = 0; i < probes_; ++i) resampled += per_probe[static_cast<size_t>(index(b, i))];
    means[static_cast<size_t>(b)] = resampled / static_cast<double>(probes_);
  }
  std::sort(means.begin(), means.end());
  const double tail = (1.0 - level) / 2.0;
  return {mean, quantile(means, tail), quantile(means, 1.0 - tail)};
}

Interval ProbeBootstrap::difference(const std::vector<double>& before, const std::vector<double>& after,
                                    double level) const {
  if (before.size() != after.size()) {
    throw Error("a paired difference needs the same probes at both steps (" + std::to_string(before.size()) + " and " +
                std::to_string(after.size()) + " values)");
  }
  std::vector<double> change(before.size());
  for (size_t i = 0; i < before.size(); ++i) change[i] = after[i] - before[i];
  return interval(change, level);
}

}  // namespace coupling
