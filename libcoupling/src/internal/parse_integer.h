// Strict integer parsing for the library's text inputs (schedules, launcher variables): the
// whole string must be one integer; anything else is nullopt, so callers can name the input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace coupling::detail {

inline std::optional<int64_t> parse_int64(const std::string& text) {
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace coupling::detail
