#include "coupling/training/schedule.h"

#include "coupling/error.h"
#include "internal/parse_integer.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace coupling {
namespace {

int64_t parse_count(const std::string& item, const std::string& value) {
  const auto n = detail::parse_int64(value);
  if (n && *n >= 0) return *n;
  throw ConfigError("bad measurement schedule item '" + item + "': expected a non-negative integer after ':'");
}

/// The i-th of `points` (>= 2) log-spaced steps in [1, total]: round(total^(i / (points - 1))).
int64_t log_spaced_step(int64_t i, int64_t points, int64_t total) {
  const double exponent =
      std::log(static_cast<double>(total)) * static_cast<double>(i) / static_cast<double>(points - 1);
  return std::clamp<int64_t>(std::llround(std::exp(exponent)), 1, total);
}

/// Whether `step` is one of the log-spaced steps, in constant time: the steps increase with i, and
/// an i that reaches `step` lies within one of the inverse of the formula at `step` (a schedule
/// is asked once per training step, and "log:N" may be large).
bool is_log_spaced(int64_t step, int64_t points, int64_t total) {
  if (points <= 0 || total <= 0 || step < 1 || step > total) return false;
  if (points == 1) return step == total;
  if (total == 1) return step == 1;
  const double position =
      static_cast<double>(points - 1) * std::log(static_cast<double>(step)) / std::log(static_cast<double>(total));
  const int64_t nearest = std::llround(position);
  for (int64_t i = std::max<int64_t>(0, nearest - 1); i <= std::min(points - 1, nearest + 1); ++i) {
    if (log_spaced_step(i, points, total) == step) return true;
  }
  return false;
}

}  // namespace

MeasurementSchedule MeasurementSchedule::parse(const std::string& text) {
  MeasurementSchedule schedule;
  std::istringstream items(text);
  std::string item;
  while (items >> item) {
    const auto colon = item.find(':');
    const std::string kind = item.substr(0, colon);
    const std::string value = colon == std::string::npos ? "" : item.substr(colon + 1);
    if (kind == "every" && colon != std::string::npos) {
      schedule.every = parse_count(item, value);
    } else if (kind == "log" && colon != std::string::npos) {
      schedule.log_points = parse_count(item, value);
    } else if (kind == "steps" && colon != std::string::npos) {
      std::istringstream list(value);
      std::string step;
      while (std::getline(list, step, ',')) schedule.steps.push_back(parse_count(item, step));
      std::sort(schedule.steps.begin(), schedule.steps.end());
    } else if (item == "checkpoints") {
      schedule.at_checkpoints = true;
    } else {
      throw ConfigError("bad measurement schedule item '" + item +
                        "': use space-separated every:N, log:N, steps:A,B,C and/or checkpoints");
    }
  }
  return schedule;
}

std::string MeasurementSchedule::str() const {
  std::ostringstream out;
  if (every > 0) out << "every:" << every << " ";
  if (log_points > 0) out << "log:" << log_points << " ";
  if (!steps.empty()) {
    out << "steps:";
    for (size_t i = 0; i < steps.size(); ++i) out << (i ? "," : "") << steps[i];
    out << " ";
  }
  if (at_checkpoints) out << "checkpoints ";
  std::string text = out.str();
  if (!text.empty()) text.pop_back();
  return text;
}

bool MeasurementSchedule::due(int64_t step, int64_t total, bool checkpoint) const {
  if (step == 0 || step == total) return true;
  if (every > 0 && step % every == 0) return true;
  if (at_checkpoints && checkpoint) return true;
  if (std::binary_search(steps.begin(), steps.end(), step)) return true;
  return is_log_spaced(step, log_points, total);
}

std::vector<int64_t> MeasurementSchedule::planned(int64_t total) const {
  std::vector<int64_t> out;
  for (int64_t step = 0; step <= total; ++step) {
    if (due(step, total, false)) out.push_back(step);
  }
  return out;
}

}  // namespace coupling
