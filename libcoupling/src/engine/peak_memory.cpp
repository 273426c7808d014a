#include "coupling/engine/peak_memory.h"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <sstream>
#include <string>

namespace coupling {
namespace {

/// The largest peak that a reset has cleared.
std::atomic<double> cleared_peak_mib{0.0};

}  // namespace

bool reset_peak_memory() {
  const double before = peak_memory_mib();
  double seen = cleared_peak_mib.load();
  while (before > seen && !cleared_peak_mib.compare_exchange_weak(seen, before)) {
  }
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

double peak_memory_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    double kib = 0.0;
    fields >> kib;
    return kib / 1024.0;
  }
  return 0.0;
}

double process_peak_memory_mib() { return std::max(cleared_peak_mib.load(), peak_memory_mib()); }

}  // namespace coupling
