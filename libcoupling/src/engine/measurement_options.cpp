// MeasurementOptions from and to text: the one place that knows the options' text forms.
#include "coupling/engine/measurement.h"

#include "coupling/choices.h"
#include "coupling/error.h"

#include <algorithm>
#include <sstream>

namespace coupling {
namespace {

/// `what` names the option as the library does, e.g. "K grid" for MeasurementOptions::k_grid.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& what, const std::string& setting) {
  std::vector<int64_t> values;
  std::istringstream list(text);
  std::string item;
  while (std::getline(list, item, ',')) {
    try {
      size_t used = 0;
      values.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw ConfigError(what + " '" + text + "' is not a comma-separated list of integers", setting);
    }
  }
  if (values.empty()) throw ConfigError(what + " is empty: give at least one value", setting);
  return values;
}

template <class T>
std::string join(const std::vector<T>& values) {
  std::ostringstream out;
  for (size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  return out.str();
}

constexpr const char* kTokenModes[] = {"last", "list", "all"};

}  // namespace

MeasurementOptions MeasurementOptions::parse(const std::string& k, const std::string& tokens,
                                             const std::string& context_pairs, const std::string& spectrum,
                                             const std::map<std::string, int64_t>& token_names,
                                             const std::string& jacobian, int64_t depth_band) {
  MeasurementOptions options;
  if (!k.empty() && k != join(options.k_grid)) {
    options.k_grid = parse_int_list(k, "K grid", "MeasurementOptions::k_grid");
    options.cap_k_at_d = false;  // a K the user asked for is never silently replaced
  }
  // Named tokens (ViT: cls, center) become their indices.
  const auto numeric = [&](std::string text) {
    for (const auto& [name, token] : token_names) {
      for (size_t at = text.find(name); at != std::string::npos; at = text.find(name)) {
        text.replace(at, name.size(), std::to_string(token));
      }
    }
    return text;
  };
  if (tokens == "last") {
    options.tokens.mode = TokenSelection::Mode::kLast;
  } else if (tokens == "all") {
    options.tokens.mode = TokenSelection::Mode::kAll;
  } else {
    options.tokens.mode = TokenSelection::Mode::kList;
    options.tokens.tokens = parse_int_list(numeric(tokens), "token list", "MeasurementOptions::tokens");
  }
  if (!context_pairs.empty()) {
    std::istringstream list(numeric(context_pairs));
    std::string pair;
    while (std::getline(list, pair, ',')) {
      const auto colon = pair.find(':');
      try {
        if (colon == std::string::npos) throw std::invalid_argument(pair);
        const auto ends = parse_int_list(pair.substr(0, colon) + "," + pair.substr(colon + 1), "context pair",
                                         "MeasurementOptions::tokens.context_pairs");
        if (ends.size() != 2) throw std::invalid_argument(pair);
        options.tokens.context_pairs.push_back({ends[0], ends[1]});
      } catch (const std::exception&) {
        throw ConfigError(
            "context pairs '" + context_pairs + "' are not a comma list of INPUT:OUTPUT token pairs (e.g. 0:-1,5:-1)",
            "MeasurementOptions::tokens.context_pairs");
      }
    }
  }
  bool known = false;
  for (size_t i = 0; i < spectrum_choices().size(); ++i) {
    if (spectrum == spectrum_choices()[i]) {
      options.spectrum = static_cast<SpectrumMethod>(i);
      known = true;
    }
  }
  if (!known) {
    throw ConfigError("spectrum method '" + spectrum + "' is not one of " + quoted_choices(spectrum_choices()),
                      "MeasurementOptions::spectrum");
  }
  const auto& paths = jacobian_path_choices();
  const auto path = std::find(paths.begin(), paths.end(), jacobian);
  if (path == paths.end()) {
    throw ConfigError("Jacobian path '" + jacobian + "' is not one of " + quoted_choices(paths),
                      "MeasurementOptions::jacobian_path");
  }
  options.jacobian_path = static_cast<JacobianPath>(path - paths.begin());
  if (depth_band < 0) {
    throw ConfigError("depth band " + std::to_string(depth_band) +
                          " is negative: give the largest block distance to couple, or 0 for every pair",
                      "MeasurementOptions::depth_band");
  }
  options.depth_band = depth_band;
  return options;
}

std::string MeasurementOptions::str() const {
  std::ostringstream out;
  out << "k_grid=" << join(k_grid) << " k_fractions=" << join(k_fractions);
  out << " tokens=" << kTokenModes[static_cast<int>(tokens.mode)] << ":" << join(tokens.tokens) << " pairs=";
  for (size_t i = 0; i < tokens.context_pairs.size(); ++i) {
    out << (i ? "," : "") << tokens.context_pairs[i].input << ":" << tokens.context_pairs[i].output;
  }
  out << " spectrum=" << spectrum_choices()[static_cast<size_t>(spectrum)]
      << " precision=" << (precision == SvdPrecision::kFloat64 ? "fp64" : "fp32");
  if (spectrum != SpectrumMethod::kExact) {
    out << " oversample=" << randomized.oversample << " power_iterations=" << randomized.power_iterations
        << " seed=" << randomized.seed;
  }
  // Absent at their defaults, so the texts of older logs stay valid.
  if (jacobian_path != JacobianPath::kAuto)
    out << " jacobian=" << jacobian_path_choices()[static_cast<size_t>(jacobian_path)];
  if (depth_band > 0) out << " depth_band=" << depth_band;
  return out.str();
}

}  // namespace coupling
