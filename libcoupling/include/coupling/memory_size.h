// Memory sizes as the command lines take them ("4G", "512M", "1.5GiB", bytes): --max-memory.
// Header-only, no LibTorch (the run-config parser that uses it is fuzzed without LibTorch).
#pragma once

#include "coupling/error.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

namespace coupling {

/// "4G", "512M", "1.5GiB", "2048K" or bytes ("1000000"): binary units, case-insensitive, an
/// optional "iB"/"B". Throws coupling::ConfigError naming `flag` for anything else or for 0.
inline int64_t parse_memory_size(const std::string& text, const std::string& flag) {
  std::string unit;
  double value = 0;
  std::istringstream in(text);
  const bool number = static_cast<bool>(in >> value);
  in >> unit;
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const std::string suffix : {"ib", "b"}) {
    if (unit.size() >= suffix.size() && unit.compare(unit.size() - suffix.size(), suffix.size(), suffix) == 0) {
      unit.resize(unit.size() - suffix.size());
      break;
    }
  }
  const std::string units = "kmgt";
  const auto found = units.find(unit);  // 0 for no unit
  const auto power = unit.empty() ? 0 : found + 1;
  std::string rest;
  if (!number || !std::isfinite(value) || value <= 0 || unit.size() > 1 || found == std::string::npos ||
      static_cast<bool>(in >> rest)) {
    throw ConfigError(flag + " '" + text + "': give a memory size such as 4G, 512M or 1.5GiB (binary units)");
  }
  const long double bytes = static_cast<long double>(value) * std::pow(1024.0L, static_cast<long double>(power));
  if (bytes < 1 || bytes >= static_cast<long double>(std::numeric_limits<int64_t>::max())) {
    throw ConfigError(flag + " '" + text + "': give a memory size between 1 byte and 8 EiB");
  }
  return static_cast<int64_t>(bytes);
}

}  // namespace coupling
