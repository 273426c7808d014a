// coupling-train: the bundled trainers' command line.
//   coupling-train gpt|vit [--config FILE] [--resume DIR] [--flag value ...]
//   coupling-train --print-schedule SPEC [--print-schedule SPEC ...] --steps T
//                  the steps each SPEC measures in a T-step run, one line per SPEC
// Launched by torchrun, srun, mpirun or scripts/launch.sh it trains data-parallel (docs/distributed.md).
// Errors print one line naming the problem and the fix, and exit with status 2 (3 when a
// collective failed: a peer rank died or timed out).
#include "coupling/engine/device.h"
#include "coupling/error.h"
#include "coupling/training/schedule.h"
#include "trainer/apps/command_line.h"
#include "trainer/apps/exit_status.h"
#include "trainer/loop/gpt_trainer.h"
#include "trainer/loop/run_config.h"
#include "trainer/loop/runtime.h"
#include "trainer/loop/vit_trainer.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/parallel/env.h"
#include "trainer/parallel/rendezvous.h"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

trainer::TrainSummary train(const trainer::GptRunConfig& config, bool resume, coupling::Communicator* comm) {
  return trainer::train_gpt(config, resume, comm);
}
trainer::TrainSummary train(const trainer::VitRunConfig& config, bool resume, coupling::Communicator* comm) {
  return trainer::train_vit(config, resume, comm);
}

/// One model's subcommand: its flags (from visit_fields), --config and --resume.
template <class RunConfig>
class Subcommand {
 public:
  Subcommand(CLI::App& app, const char* name, const char* description, int argc, char** argv)
      : command_(app.add_subcommand(name, description)) {
    trainer::visit_fields(
        [&](const char* flag, const char* help, trainer::ResumePolicy, auto& value) {
          command_->add_option(std::string("--") + flag, value, help)
              ->capture_default_str()
              ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        },
        config_);
    command_->add_option("--resume", resume_dir_, "Continue the run in this directory from its newest checkpoint");
    command_->add_flag("--override", override_,
                       "With --resume: let --lr, --min-lr-fraction, --weight-decay, "
                       "--warmup and --grad-clip change from here on (logged)");
    command_->add_option("--config", config_file_, "Read options from this TOML file (e.g. a run's config.toml)");
    // Precedence: flags > --config FILE > defaults. This runs before any flag is stored: it
    // finds --config in the raw arguments and loads it as the flags' defaults.
    command_->preparse_callback([this, argc, argv](size_t) {
      const std::string flag = "--config", flag_eq = "--config=";
      for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == flag && i + 1 < argc) config_ = trainer::read_config_file<RunConfig>(argv[i + 1]);
        if (arg.rfind(flag_eq, 0) == 0) config_ = trainer::read_config_file<RunConfig>(arg.substr(flag_eq.size()));
      }
    });
  }

  bool chosen() const { return command_->parsed(); }

  void run() {
    std::set<std::string> explicit_flags;
    trainer::visit_fields(
        [&](const char* name, const char*, trainer::ResumePolicy, auto&) {
          // Values from a config file count as given: a resume must agree with them too.
          if (command_->count(std::string("--") + name) > 0 || !config_file_.empty()) explicit_flags.insert(name);
        },
        config_);
    // Launched by torchrun/SLURM/mpirun/launch.sh with several processes: one data-parallel job.
    const auto job = trainer::resolve_dist_env();
    // The device: a ConfigError (exit 2) before anything is written when it cannot be had.
    const c10::Device device = coupling::resolve_rank_device(config_.train.device, job.local_rank);
    std::optional<coupling::Communicator> communicator;
    if (job.distributed()) {
      communicator.emplace(
          trainer::join_job(job, config_.train.backend, device, std::chrono::seconds(config_.train.dist_timeout)));
    }
    coupling::Communicator* comm = communicator ? &*communicator : nullptr;
    const bool resume = !resume_dir_.empty();
    RunConfig config;
    std::exception_ptr failure;
    try {
      if (override_ && !resume)
        throw coupling::ConfigError("--override goes with --resume: a new run has nothing to override");
      config = resume ? trainer::config_for_resume(resume_dir_, config_, explicit_flags, override_) : config_;
    } catch (const coupling::Error&) {
      failure = std::current_exception();
    }
    trainer::rethrow_if_any_rank_failed(failure, "reading the configuration", comm);
    config.train.device = config_.train.device;  // where this launch runs, not where the run began
    if (job.distributed()) config.train.threads = trainer::rank_threads(config.train.threads, job);
    train(config, resume, comm);
  }

 private:
  CLI::App* command_;
  RunConfig config_;
  std::string config_file_;
  std::string resume_dir_;
  bool override_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  trainer::reexec_with_tuned_openblas(argv);
  spdlog::set_pattern("[%H:%M:%S] [%^%l%$] %v");
  CLI::App app("coupling-train: train the bundled models (with libcoupling instrumentation)");
  app.require_subcommand(0, 1);
  // The measurement schedule as the trainer applies it, for scripts that plan or emulate one.
  std::vector<std::string> print_schedule;
  int64_t schedule_steps = 0;
  auto* print = app.add_option("--print-schedule", print_schedule,
                               "Print the steps a --measure-schedule SPEC measures in a run of --steps T (one line "
                               "per SPEC, steps separated by spaces, without checkpoints) and exit; repeatable");
  app.add_option("--steps", schedule_steps, "With --print-schedule: the run's length in steps")
      ->needs(print)
      ->check(CLI::PositiveNumber);
  print->needs("--steps");
  Subcommand<trainer::GptRunConfig> gpt(
      app, "gpt", "Train the byte-level GPT on a text corpus (default: the KJV Bible)", argc, argv);
  Subcommand<trainer::VitRunConfig> vit(app, "vit",
                                        "Train a Vision Transformer on MNIST-format images (default: "
                                        "Fashion-MNIST)",
                                        argc, argv);
  trainer::add_standard_flags(app);
  try {
    if (const auto exit_status = trainer::parse_command_line(app, argc, argv)) return *exit_status;
  } catch (const coupling::Error& e) {  // a --config file that cannot be read
    spdlog::error("{}", e.what());
    return trainer::kUserErrorExit;
  }

  if (!print_schedule.empty()) {
    try {
      std::vector<std::vector<int64_t>> planned;  // every SPEC checked before anything is printed
      for (const auto& spec : print_schedule) {
        planned.push_back(coupling::MeasurementSchedule::parse(spec).planned(schedule_steps));
      }
      for (const auto& steps : planned) {
        for (size_t i = 0; i < steps.size(); ++i) std::printf(i ? " %lld" : "%lld", static_cast<long long>(steps[i]));
        std::printf("\n");
      }
      return 0;
    } catch (const coupling::Error& e) {
      spdlog::error("--print-schedule: {}", e.what());
      return trainer::kUserErrorExit;
    }
  }
  if (!gpt.chosen() && !vit.chosen()) {
    spdlog::error(
        "give a model to train (coupling-train gpt ... or coupling-train vit ...): see coupling-train --help");
    return trainer::kUserErrorExit;
  }
  try {
    if (gpt.chosen()) gpt.run();
    if (vit.chosen()) vit.run();
    return 0;
  } catch (...) {
    return trainer::report_failure(
        "lower --batch, --probes or the model size; --resume continues from the last checkpoint",
        trainer::measurement_notes({{"MeasurementOptions::max_row_bytes", "flag --max-row-mib"},
                                    {"LogMetadata::seed", "flag --seed"},
                                    {"LogMetadata::data_sha256", "flag --data"},
                                    {"TensorBoardCallback::directory", "flag --tensorboard"}}));
  }
}
