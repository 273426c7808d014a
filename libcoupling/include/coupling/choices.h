// The fixed value sets of the options that take one, one list each: the parsers that check a
// value and the command lines that list them in --help (CLI11 validators) read the same list.
// Header-only, no LibTorch (the run-config parser that uses it is fuzzed without LibTorch).
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace coupling {

/// --spectrum, in SpectrumMethod order (coupling/engine/spectrum.h).
inline const std::vector<std::string>& spectrum_choices() {
  static const std::vector<std::string> choices{"auto", "exact", "randomized"};
  return choices;
}

/// --jacobian, in JacobianPath order (coupling/engine/measurement.h).
inline const std::vector<std::string>& jacobian_path_choices() {
  static const std::vector<std::string> choices{"auto", "materialised", "matrix-free"};
  return choices;
}

/// --precision of training forward passes.
inline const std::vector<std::string>& precision_choices() {
  static const std::vector<std::string> choices{"fp32", "bf16"};
  return choices;
}

/// --backend of data-parallel collectives.
inline const std::vector<std::string>& backend_choices() {
  static const std::vector<std::string> choices{"auto", "gloo", "nccl"};
  return choices;
}

inline bool is_choice(const std::vector<std::string>& choices, const std::string& value) {
  return std::find(choices.begin(), choices.end(), value) != choices.end();
}

/// "'auto', 'exact' or 'randomized'", for messages.
inline std::string quoted_choices(const std::vector<std::string>& choices) {
  std::string text;
  for (size_t i = 0; i < choices.size(); ++i) {
    text += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + ("'" + choices[i] + "'");
  }
  return text;
}

}  // namespace coupling
