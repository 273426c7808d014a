#include "trainer/loop/run_config.h"

#include "coupling/choices.h"
#include "coupling/error.h"
#include "coupling/memory_size.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <type_traits>

namespace trainer {
namespace {

/// `value` as a TOML value: strings quoted and escaped by toml++, numbers in their shortest form
/// that reads back exactly (fmt; "0.1", "1e-05": TOML floats, or integers, which read as numbers).
/// Negative zero is "-0.0": fmt's "-0" is the TOML integer 0, which would lose the sign.
template <class T>
std::string format_value(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    std::ostringstream text;
    text << toml::value<std::string>(value);
    return text.str();
  } else if constexpr (std::is_same_v<T, double>) {
    return value == 0.0 && std::signbit(value) ? "-0.0" : fmt::format("{}", value);
  } else {
    return fmt::format("{}", value);
  }
}

/// Sets `target` from the TOML node `node` of key `name` in `path`, or says what type it needed.
template <class T>
void read_value(const toml::node& node, const std::string& name, const std::string& path, T& target) {
  std::optional<T> value;
  if constexpr (std::is_same_v<T, double>) {
    if (node.is_integer())
      value = static_cast<double>(*node.value<int64_t>());
    else if (node.is_floating_point())
      value = node.value<double>();
  } else if constexpr (std::is_same_v<T, int64_t>) {
    if (node.is_integer()) value = node.value<int64_t>();
  } else {
    if (node.is_string()) value = node.value<std::string>();
  }
  if (!value) {
    const char* wanted = std::is_same_v<T, std::string> ? "a string"
                         : std::is_same_v<T, double>    ? "a number"
                                                        : "an integer";
    throw coupling::ConfigError(
        fmt::format("config file {} line {}: {} must be {}", path, node.source().begin.line, name, wanted));
  }
  target = *value;
}

void require(bool ok, const std::string& message) {
  if (!ok) throw coupling::ConfigError(message);
}

}  // namespace

void TrainConfig::validate() const {
  require(steps > 0, fmt::format("--steps must be positive (got {})", steps));
  require(batch > 0, fmt::format("--batch must be positive (got {})", batch));
  require(std::isfinite(lr) && lr > 0.0, fmt::format("--lr must be a positive number (got {})", lr));
  require(min_lr_fraction >= 0.0 && min_lr_fraction <= 1.0,
          fmt::format("--min-lr-fraction must be in [0, 1] (got {})", min_lr_fraction));
  require(std::isfinite(weight_decay) && weight_decay >= 0.0,
          fmt::format("--weight-decay must be a number >= 0 (got {})", weight_decay));
  require(warmup >= 0, fmt::format("--warmup must be >= 0 (got {})", warmup));
  require(std::isfinite(grad_clip) && grad_clip >= 0.0,
          fmt::format("--grad-clip must be a number >= 0 (got {})", grad_clip));
  require(eval_every >= 0, fmt::format("--eval-every must be >= 0 (got {})", eval_every));
  require(eval_windows > 0, fmt::format("--eval-windows must be positive (got {})", eval_windows));
  require(ckpt_every >= 0, fmt::format("--ckpt-every must be >= 0 (got {})", ckpt_every));
  require(log_every > 0, fmt::format("--log-every must be positive (got {})", log_every));
  require(threads >= 0 && threads <= kMaxThreads,
          fmt::format("--threads must be in 0..{} (got {}; 0 = one per core)", kMaxThreads, threads));
  require(coupling::is_choice(coupling::backend_choices(), backend),
          "--backend must be " + coupling::quoted_choices(coupling::backend_choices()) + " (got '" + backend + "')");
  require(dist_timeout > 0, fmt::format("--dist-timeout must be positive (got {})", dist_timeout));
  require(check_every >= 0, fmt::format("--check-every must be >= 0 (got {})", check_every));
  require(!out.empty(), "--out must name a directory");
}

void CouplingConfig::validate() const {
  if (!enabled()) return;
  require(probes > 0, fmt::format("--probes must be positive (got {})", probes));
  require(measure_every >= 0, fmt::format("--measure-every must be >= 0 (got {})", measure_every));
  require(std::isfinite(max_overhead) && max_overhead >= 0.0,
          fmt::format("--max-overhead must be a number >= 0 (got {})", max_overhead));
  require(max_row_mib > 0 && max_row_mib <= (int64_t{1} << 30),
          fmt::format("--max-row-mib must be in 1..{} (got {})", int64_t{1} << 30, max_row_mib));
  require(coupling::is_choice(coupling::spectrum_choices(), spectrum),
          "--spectrum must be " + coupling::quoted_choices(coupling::spectrum_choices()) + " (got '" + spectrum + "')");
  require(coupling::is_choice(coupling::jacobian_path_choices(), jacobian),
          "--jacobian must be " + coupling::quoted_choices(coupling::jacobian_path_choices()) + " (got '" + jacobian +
              "')");
  require(oversample >= 0 && oversample <= 4096, fmt::format("--oversample must be in 0..4096 (got {})", oversample));
  require(power_iterations >= 0 && power_iterations <= 64,
          fmt::format("--power-iterations must be in 0..64 (got {})", power_iterations));
  require(depth_band >= 0, fmt::format("--depth-band must be >= 0 (got {}; 0 = every pair)", depth_band));
  if (!max_memory.empty()) coupling::parse_memory_size(max_memory, "--max-memory");
}

void GptRunConfig::validate() const {
  train.validate();
  model.validate();
  coupling.validate();
}

VitRunConfig::VitRunConfig() {
  train.out = "runs/vit";
  train.steps = 4000;
  train.batch = 128;
  train.lr = 2e-3;
  train.weight_decay = 0.05;
  train.warmup = 200;
  train.eval_every = 1000;
  train.eval_windows = 10000;
  train.ckpt_every = 2000;
  train.log_every = 100;
  coupling.tokens = "cls,center";
  // The ViT's coupling dip is later and narrower than the GPT's: log:8 misses a fifth of its
  // depth, log:22 resolves it (docs/study.md, "How dense must the schedule be?").
  coupling.measure_schedule = "log:22";
}

const std::vector<std::string>& augment_choices() {
  static const std::vector<std::string> choices{"none", "crop", "crop+flip"};
  return choices;
}

void VitRunConfig::validate() const {
  train.validate();  // the model is checked once the data gives its image size (VitImpl)
  coupling.validate();
  require(coupling::is_choice(augment_choices(), augment),
          "--augment must be " + coupling::quoted_choices(augment_choices()) + " (got '" + augment + "')");
}

template <class RunConfig>
std::vector<std::pair<std::string, std::string>> config_fields(const RunConfig& config) {
  std::vector<std::pair<std::string, std::string>> fields;
  visit_fields([&](const char* name, const char*, ResumePolicy,
                   const auto& value) { fields.emplace_back(name, format_value(value)); },
               config);
  return fields;
}

template <class RunConfig>
std::string to_toml(const RunConfig& config) {
  std::ostringstream toml;
  toml << "# coupling-train " << RunConfig::kModel << " configuration; repeat this run with --config <this file>\n";
  for (const auto& [name, value] : config_fields(config)) toml << name << " = " << value << "\n";
  return toml.str();
}

template <class RunConfig>
RunConfig read_config_file(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) {
    throw coupling::ConfigError("config file " + path + " does not exist");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) throw coupling::ConfigError("config file " + path + " cannot be read");
  return parse_config_text<RunConfig>(text.str(), path);
}

template <class RunConfig>
RunConfig parse_config_text(const std::string& text, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw coupling::ConfigError(
        fmt::format("config file {} line {}: {}", path, e.source().begin.line, e.description()));
  }
  RunConfig config;
  std::set<std::string> known;
  visit_fields(
      [&](const char* name, const char*, ResumePolicy, auto& value) {
        known.insert(name);
        if (const toml::node* node = table.get(name)) read_value(*node, name, path, value);
      },
      config);
  for (const auto& [key, node] : table) {
    if (known.count(std::string(key.str())) == 0) {
      throw coupling::ConfigError(fmt::format("config file {} line {}: '{}' is not an option of coupling-train {}",
                                              path, key.source().begin.line, key.str(), RunConfig::kModel));
    }
  }
  return config;
}

template <class RunConfig>
RunConfig merge_for_resume(const RunConfig& saved, const RunConfig& requested,
                           const std::set<std::string>& explicit_flags, bool allow_override) {
  RunConfig merged = saved;
  std::string overrides;
  visit_fields(
      [&](const char* name, const char*, ResumePolicy policy, auto& merged_value, const auto& wanted) {
        if (explicit_flags.count(name) == 0 || wanted == merged_value) return;
        if (policy == ResumePolicy::kMustMatch || (policy == ResumePolicy::kOverridable && !allow_override)) {
          throw coupling::ConfigError(fmt::format(
              "--{} {} conflicts with the checkpoint being resumed ({} = {}): drop --{} to resume, {}"
              "or start a new run in another --out directory",
              name, format_value(wanted), name, format_value(merged_value), name,
              policy == ResumePolicy::kOverridable ? "add --override to change the optimisation from here on (logged), "
                                                   : ""));
        }
        if (policy == ResumePolicy::kOverridable) {
          overrides += fmt::format("{}{} {} -> {}", overrides.empty() ? "" : ", ", name, format_value(merged_value),
                                   format_value(wanted));
        }
        merged_value = wanted;
      },
      merged, requested);
  merged.train.resume_overrides = overrides;
  return merged;
}

#define TRAINER_RUN_CONFIG_FUNCTIONS(RunConfig)                                              \
  template std::vector<std::pair<std::string, std::string>> config_fields(const RunConfig&); \
  template std::string to_toml(const RunConfig&);                                            \
  template RunConfig read_config_file<RunConfig>(const std::string&);                        \
  template RunConfig parse_config_text<RunConfig>(const std::string&, const std::string&);   \
  template RunConfig merge_for_resume(const RunConfig&, const RunConfig&, const std::set<std::string>&, bool);
TRAINER_RUN_CONFIG_FUNCTIONS(GptRunConfig)
TRAINER_RUN_CONFIG_FUNCTIONS(VitRunConfig)
#undef TRAINER_RUN_CONFIG_FUNCTIONS

}  // namespace trainer
