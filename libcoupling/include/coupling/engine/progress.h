// Progress of long work (a measurement's Jacobians and spectra, an analysis over checkpoints): a
// spdlog line with the units done, where the work is and an ETA, at most one every
// `interval_seconds`, and none at all for work that ends sooner. The ETA assumes the remaining
// units cost what the finished ones did on average.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace coupling {

/// A duration for people: "45s", "3m07s", "2h05m".
std::string format_duration(double seconds);

class ProgressMeter {
 public:
  /// `what` names the work ("step 0 Jacobians"); interval_seconds <= 0 keeps the meter silent.
  ProgressMeter(std::string what, int64_t total_units, double interval_seconds);

  /// Whether update() would log now: the interval has passed since the start or the previous
  /// line (so a caller builds the `where` text only then).
  bool due() const;

  /// `done` of the total units are finished; `where` says which (e.g. "probe 3/8, block 2/4").
  /// Logs a line when due().
  void update(int64_t done, const std::string& where = "");

  double elapsed_seconds() const;
  /// Seconds left when `done` (> 0) of the total units are finished, at the average rate so far.
  double eta_seconds(int64_t done) const;

 private:
  using Clock = std::chrono::steady_clock;
  std::string what_;
  int64_t total_;
  double interval_;
  Clock::time_point start_, last_line_;
};

}  // namespace coupling
