// libFuzzer: --measure-schedule text. Either a schedule whose text form parses back to the same
// plan (due steps within the run, increasing), or a coupling::ConfigError.
#include "coupling/error.h"
#include "coupling/training/schedule.h"

#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto schedule = coupling::MeasurementSchedule::parse(text);
    const auto again = coupling::MeasurementSchedule::parse(schedule.str());
    for (const int64_t total : {1, 7, 1000}) {
      const auto steps = schedule.planned(total);
      if (steps != again.planned(total)) std::abort();
      for (size_t i = 0; i < steps.size(); ++i) {
        if (steps[i] < 0 || steps[i] > total || (i > 0 && steps[i] <= steps[i - 1])) std::abort();
        if (!schedule.due(steps[i], total, false)) std::abort();
      }
    }
  } catch (const coupling::ConfigError&) {
  }
  return 0;
}
