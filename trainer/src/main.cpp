// coupling-train: the bundled trainers' command line.
//   coupling-train gpt [--config FILE] [--resume DIR] [--flag value ...]
// Launched by torchrun, srun, mpirun or scripts/launch.sh it trains data-parallel (docs/distributed.md).
// Errors print one line naming the problem and the fix, and exit with status 2 (3 when a
// collective failed: a peer rank died or timed out).
#include "coupling/communicator.h"
#include "coupling/data_parallel.h"
#include "coupling/dist_env.h"
#include "coupling/error.h"
#include "trainer/gpt_trainer.h"
#include "trainer/run_config.h"
#include "trainer/runtime.h"

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <thread>

namespace {

constexpr int kUserErrorExit = 2;
constexpr int kCommunicationErrorExit = 3;

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
    // Launched by torchrun/SLURM/mpirun/launch.sh with several processes: one data-parallel job.
    const auto job = coupling::resolve_dist_env();
    std::optional<coupling::Communicator> communicator;
    if (job.distributed()) {
      spdlog::set_pattern("[%H:%M:%S] [rank " + std::to_string(job.rank) + "] [%^%l%$] %v");
      if (job.rank > 0) spdlog::set_level(spdlog::level::warn);  // rank 0 reports progress
      coupling::CommunicatorOptions options;
      options.backend = gpt_config.train.backend;
      options.timeout = std::chrono::seconds(gpt_config.train.dist_timeout);
      communicator.emplace(coupling::Communicator::connect(job, options));
    }
    coupling::Communicator* comm = communicator ? &*communicator : nullptr;
    const bool resume = !resume_dir.empty();
    trainer::GptRunConfig config;
    std::exception_ptr failure;
    try {
      config = resume ? trainer::config_for_resume(resume_dir, gpt_config, explicit_flags) : gpt_config;
    } catch (const coupling::Error&) {
      failure = std::current_exception();
    }
    coupling::rethrow_if_any_rank_failed(failure, "reading the configuration", comm);
    if (config.train.threads == 0 && job.distributed()) {  // the node's cores, shared by its ranks
      const auto cores = static_cast<int64_t>(std::max(1U, std::thread::hardware_concurrency()));
      config.train.threads = std::max<int64_t>(1, cores / job.local_world_size);
    }
    trainer::train_gpt(config, resume, comm);
    return 0;
  } catch (const coupling::CommunicationError& e) {
    spdlog::error("{}", e.what());
    return kCommunicationErrorExit;
  } catch (const coupling::Error& e) {
    spdlog::error("{}", e.what());
    return kUserErrorExit;
  } catch (const c10::Error& e) {
    spdlog::error("LibTorch error: {}", e.what_without_backtrace());
    return 1;
  }
}
