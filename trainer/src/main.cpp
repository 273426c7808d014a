// coupling-train: the bundled trainers' command line.
//   coupling-train gpt [--config FILE] [--resume DIR] [--flag value ...]
// Errors print one line naming the problem and the fix, and exit with status 2.
#include "coupling/dist_env.h"
#include "coupling/error.h"
#include "trainer/gpt_trainer.h"
#include "trainer/run_config.h"
#include "trainer/runtime.h"

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <set>
#include <string>

namespace {

constexpr int kUserErrorExit = 2;

}  // namespace

int main(int argc, char** argv) {
  trainer::reexec_with_tuned_openblas(argv);
  spdlog::set_pattern("[%H:%M:%S] [%^%l%$] %v");
  CLI::App app("coupling-train: train the bundled models (with libcoupling instrumentation)");
  app.require_subcommand(1);

  // Precedence: flags on the command line > values in --config FILE > built-in defaults. The
  // config file is read first and its values become the defaults of the flags.
  trainer::GptRunConfig gpt_config;
  std::string config_file;
  std::string resume_dir;
  auto* gpt = app.add_subcommand("gpt", "Train the byte-level GPT on a text corpus (default: the KJV Bible)");
  trainer::visit_fields([&](const char* name, const char* description, trainer::ResumePolicy, auto& value) {
    gpt->add_option(std::string("--") + name, value, description)
        ->capture_default_str()
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }, gpt_config);
  gpt->add_option("--resume", resume_dir, "Continue the run in this directory from its newest checkpoint");
  gpt->add_option("--config", config_file, "Read options from this TOML file (e.g. a run's config.toml)");
  gpt->preparse_callback([&](size_t) {
    // Runs before any flag is stored: find --config in the raw arguments and load it as defaults.
    const std::string flag = "--config", flag_eq = "--config=";
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == flag && i + 1 < argc) gpt_config = trainer::read_config_file(argv[i + 1]);
      if (arg.rfind(flag_eq, 0) == 0) gpt_config = trainer::read_config_file(arg.substr(flag_eq.size()));
    }
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const coupling::Error& e) {
    spdlog::error("{}", e.what());
    return kUserErrorExit;
  }

  try {
    std::set<std::string> explicit_flags;
    trainer::visit_fields([&](const char* name, const char*, trainer::ResumePolicy, auto&) {
      if (gpt->count(std::string("--") + name) > 0) explicit_flags.insert(name);
    }, gpt_config);
    if (!config_file.empty()) {
      // Values from the config file count as given: a resume must agree with them too.
      trainer::visit_fields([&](const char* name, const char*, trainer::ResumePolicy, auto&) {
        explicit_flags.insert(name);
      }, gpt_config);
    }
    // Launched by torchrun/SLURM/mpirun with several processes? They would each train the
    // same model into the same directory: refuse, clearly, until data-parallel training exists.
    const auto job = coupling::resolve_dist_env();
    if (job.distributed()) {
      throw coupling::ConfigError("launched as rank " + std::to_string(job.rank) + " of " +
                                  std::to_string(job.world_size) + " (" + job.launcher +
                                  "), but coupling-train trains in one process for now: launch a single process");
    }
    const bool resume = !resume_dir.empty();
    trainer::train_gpt(resume ? trainer::config_for_resume(resume_dir, gpt_config, explicit_flags) : gpt_config,
                       resume);
    return 0;
  } catch (const coupling::Error& e) {
    spdlog::error("{}", e.what());
    return kUserErrorExit;
  } catch (const c10::Error& e) {
    spdlog::error("LibTorch error: {}", e.what_without_backtrace());
    return 1;
  }
}
