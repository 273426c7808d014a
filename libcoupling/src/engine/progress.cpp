#include "coupling/engine/progress.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <utility>

namespace coupling {

std::string format_duration(double seconds) {
  const auto total = static_cast<int64_t>(std::llround(std::max(seconds, 0.0)));
  if (total >= 3600) return fmt::format("{}h{:02d}m", total / 3600, (total % 3600) / 60);
  if (total >= 60) return fmt::format("{}m{:02d}s", total / 60, total % 60);
  return fmt::format("{}s", total);
}

ProgressMeter::ProgressMeter(std::string what, int64_t total_units, double interval_seconds)
    : what_(std::move(what)),
      total_(total_units),
      interval_(interval_seconds),
      start_(Clock::now()),
      last_line_(start_) {}

double ProgressMeter::elapsed_seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

double ProgressMeter::eta_seconds(int64_t done) const {
  return elapsed_seconds() / static_cast<double>(done) * static_cast<double>(total_ - done);
}

bool ProgressMeter::due() const {
  return interval_ > 0 && total_ > 0 && std::chrono::duration<double>(Clock::now() - last_line_).count() >= interval_;
}

void ProgressMeter::update(int64_t done, const std::string& where) {
  if (done <= 0 || !due()) return;
  last_line_ = Clock::now();
  spdlog::info("{}: {}/{}{} | {} elapsed | ETA {}", what_, done, total_, where.empty() ? "" : " (" + where + ")",
               format_duration(elapsed_seconds()), format_duration(eta_seconds(done)));
}

}  // namespace coupling
