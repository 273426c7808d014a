#include "trainer/apps/command_line.h"

#include "coupling/choices.h"
#include "coupling/engine/device.h"
#include "coupling/version.h"
#include "trainer/apps/exit_status.h"
#include "trainer/loop/run_config.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <functional>
#include <map>
#include <vector>

namespace trainer {
namespace {

/// The flags that take one of a fixed set of values, and where each set is defined.
const std::map<std::string, std::function<const std::vector<std::string>&()>>& choice_flags() {
  static const std::map<std::string, std::function<const std::vector<std::string>&()>> flags = {
      {"--spectrum", coupling::spectrum_choices},
      {"--jacobian", coupling::jacobian_path_choices},
      {"--precision", coupling::precision_choices},
      {"--backend", coupling::backend_choices},
      {"--augment", augment_choices},
  };
  return flags;
}

void restrict_choices(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    const std::string name = option->get_name(false, true);
    if (const auto found = choice_flags().find(name); found != choice_flags().end()) {
      option->check(CLI::IsMember(found->second()));
    } else if (name == "--device") {  // cuda:N is not a finite list: resolve_device checks it
      option->type_name("{cpu,cuda,cuda:N,auto}");
    }
  }
  for (CLI::App* sub : app.get_subcommands({})) restrict_choices(*sub);
}

}  // namespace

std::string version_text() {
  return fmt::format("libcoupling {} (git {}), LibTorch {}", coupling::version(), coupling::git_revision(),
                     coupling::torch_version());
}

void add_standard_flags(CLI::App& app) {
  app.set_version_flag("--version", version_text());
  for (CLI::App* sub : app.get_subcommands({})) sub->set_version_flag("--version", version_text());
  restrict_choices(app);
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    spdlog::error("{}: see {} --help", e.what(), app.get_name());
    return kUserErrorExit;
  }
}

}  // namespace trainer
