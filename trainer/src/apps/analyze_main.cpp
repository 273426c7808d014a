// coupling-analyze: coupling measurements of saved models (docs/analysis.md).
//   coupling-analyze --checkpoints RUN_DIR [--log LOG]
//       every checkpoint of a coupling-train run (GPT or ViT), with the run's own probes and
//       options, into LOG (default RUN_DIR/analysis.h5)
//   coupling-analyze --hf DIR [--hf DIR ...] --probe-ids FILE --log LOG [--step N] [--k ...] [--tokens ...]
//       Hugging Face model directories (gpt2, gpt_neox, llama, mistral, bert), natively; a
//       directory's step comes from its name (step143000, step_1000, checkpoint-500)
//   coupling-analyze --torchscript FILE|DIR [...] --log LOG (--probe-text F | --probe-idx F | --probe-tensor F)
//       [--probes 8] [--length 64] [--seed 1] [--k 10,30,50] [--tokens last] [--spectrum auto]
//       models exported from PyTorch (coupling/models/torchscript_model.h), step = last number in the name
// The log has the standard schema (scripts/plot_coupling.py reads it); re-running skips the
// steps it holds. Under a launcher (scripts/launch.sh N analyze ..., torchrun, srun, mpirun) the
// ranks share each model's probes and rank 0 writes the log. Errors: one line, exit status 2
// (bad input, on every rank), 3 (a rank died or a collective timed out).
#include "coupling/engine/device.h"
#include "coupling/engine/memory_estimate.h"
#include "coupling/engine/peak_memory.h"
#include "coupling/error.h"
#include "coupling/memory_size.h"
#include "trainer/apps/analysis.h"
#include "trainer/apps/command_line.h"
#include "trainer/apps/exit_status.h"
#include "trainer/loop/runtime.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/parallel/rendezvous.h"

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <exception>
#include <optional>

int main(int argc, char** argv) {
  trainer::reexec_with_tuned_openblas(argv);
  spdlog::set_pattern("[%H:%M:%S] [%^%l%$] %v");
  CLI::App app("coupling-analyze: coupling measurements of saved models");
  std::string run_dir, log_path;
  std::vector<std::string> torchscript, hf_dirs;
  std::string probe_ids;
  int64_t step = 0;
  trainer::ProbeSource probes;
  trainer::CouplingConfig coupling;
  int64_t threads = 0;
  std::string device_spec = "auto";
  std::string max_memory_text;
  std::string backend = "auto";
  int64_t dist_timeout = 300;
  auto* checkpoints =
      app.add_option("--checkpoints", run_dir, "A coupling-train run directory: measure its checkpoints");
  auto* scripts = app.add_option("--torchscript", torchscript,
                                 "TorchScript model files, or directories of *.pt files (repeatable)");
  auto* hf = app.add_option("--hf", hf_dirs,
                            "Hugging Face model directories (config.json + safetensors), e.g. a "
                            "series of training checkpoints (repeatable)");
  checkpoints->excludes(scripts)->excludes(hf);
  scripts->excludes(hf);
  app.add_option("--log", log_path,
                 "The HDF5 log (--checkpoints: default RUN_DIR/analysis.h5); an existing one is "
                 "continued");
  // Measurement options of --hf and --torchscript; --checkpoints measures with the run's own.
  const std::vector<CLI::Option*> measurement_options = {
      app.add_option("--k", coupling.k, "K grid, each <= d (default 10,30,50 capped at d)"),
      app.add_option("--tokens", coupling.tokens, "Measured tokens: last, all or a list")->capture_default_str(),
      app.add_option("--context-pairs", coupling.context_pairs,
                     "INPUT:OUTPUT token pairs for context coupling, "
                     "e.g. 0:-1,5:-1"),
      app.add_option("--spectrum", coupling.spectrum, "auto, exact or randomized")->capture_default_str(),
      app.add_option("--oversample", coupling.oversample, "Randomized top-K: test vectors beyond K (p)")
          ->capture_default_str(),
      app.add_option("--power-iterations", coupling.power_iterations,
                     "Randomized top-K: power iterations (q); more is more accurate and slower")
          ->capture_default_str(),
      app.add_option("--jacobian", coupling.jacobian,
                     "auto (matrix-free when its estimated cost is lower), materialised or matrix-free")
          ->capture_default_str(),
      app.add_option("--depth-band", coupling.depth_band,
                     "Couple only blocks at most this many apart; the rest is NaN (0 = every pair)")
          ->capture_default_str()};
  const std::vector<CLI::Option*> torchscript_only = {
      app.add_option("--probe-text", probes.text, "TorchScript probes: byte windows of this text file"),
      app.add_option("--probe-idx", probes.idx, "TorchScript probes: images of this IDX file, in [0, 1]"),
      app.add_option("--probe-tensor", probes.tensor, "TorchScript probes: a tensor saved with torch.save"),
      app.add_option("--probes", probes.count, "Probe count (text, IDX)")->capture_default_str(),
      app.add_option("--length", probes.length, "Probe length in bytes (text)")->capture_default_str(),
      app.add_option("--seed", probes.seed, "Seed of the probe choice")->capture_default_str()};
  const std::vector<CLI::Option*> hf_only = {
      app.add_option("--probe-ids", probe_ids,
                     "--hf probes: token ids, one probe per line, all the same length "
                     "(scripts/tokenize_probes.py)"),
      app.add_option("--step", step, "--hf: the step of a single directory whose name has none (default 0)")};
  app.add_option("--threads", threads, "Intra-op threads (0 = one per core)")->capture_default_str();
  app.add_option("--max-memory", max_memory_text,
                 "Refuse to start when the measurement's estimated peak memory exceeds this (e.g. 4G; default: what "
                 "the host has, MemAvailable or the cgroup's limit)");
  app.add_option(
         "--device", device_spec,
         std::string("Where to measure: ") + coupling::kDeviceChoices + " (auto: CUDA when a device is visible)")
      ->capture_default_str();
  app.add_option("--backend", backend, "Data-parallel backend: auto (nccl on CUDA, else gloo), gloo or nccl")
      ->capture_default_str();
  app.add_option("--dist-timeout", dist_timeout,
                 "Seconds a data-parallel rendezvous or collective waits for the other ranks; more than one "
                 "probe's measurement")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  trainer::add_standard_flags(app);
  if (const auto exit_status = trainer::parse_command_line(app, argc, argv)) return *exit_status;
  try {
    // Launched with several processes: one data-parallel job. The ranks meet before any input is
    // checked, so that a bad input stops every rank at once (exit 2) instead of leaving the others
    // waiting.
    const auto job = trainer::resolve_dist_env();
    std::optional<coupling::Communicator> communicator;
    std::optional<c10::Device> device;
    if (job.distributed()) {
      device = coupling::resolve_rank_device(device_spec, job.local_rank);
      communicator.emplace(trainer::join_job(job, backend, *device, std::chrono::seconds(dist_timeout)));
    }
    coupling::Communicator* comm = communicator ? &*communicator : nullptr;
    std::optional<trainer::AnalysisPlan> plan;
    std::exception_ptr failure;
    try {
      if (run_dir.empty() && torchscript.empty() && hf_dirs.empty()) {
        throw coupling::ConfigError("say what to analyse: --checkpoints RUN_DIR, --hf DIR or --torchscript FILE|DIR");
      }
      const std::string route = !run_dir.empty() ? "--checkpoints" : !hf_dirs.empty() ? "--hf" : "--torchscript";
      if (run_dir.empty() && log_path.empty()) throw coupling::ConfigError(route + " needs --log LOG");
      if (!hf_dirs.empty() && probe_ids.empty()) {
        throw coupling::ConfigError(
            "--hf needs --probe-ids FILE (token ids; scripts/tokenize_probes.py MODEL_DIR "
            "PROMPTS > FILE makes one with the model's tokenizer)");
      }
      auto refuse = [&](const std::vector<CLI::Option*>& options, bool applies, const std::string& why) {
        for (const auto* option : options) {
          if (!applies && option->count() > 0) {
            throw coupling::ConfigError(option->get_name() + " does not apply to " + route + why + "; drop " +
                                        option->get_name());
          }
        }
      };
      refuse(measurement_options, run_dir.empty(),
             ": a run's checkpoints are measured with the run's own probes and "
             "options (its config.toml)");
      refuse(torchscript_only, !torchscript.empty(), "");
      refuse(hf_only, !hf_dirs.empty(), "");
      if (!device) device = coupling::resolve_device(device_spec);
      if (job.distributed()) threads = trainer::rank_threads(threads, job);
      trainer::setup_compute(threads);
      const auto hf_step = app.get_option("--step")->count() > 0 ? std::optional<int64_t>(step) : std::nullopt;
      const auto max_memory =
          max_memory_text.empty()
              ? std::nullopt
              : std::optional<int64_t>(coupling::parse_memory_size(max_memory_text, "--max-memory"));
      plan = !run_dir.empty()   ? trainer::plan_checkpoints(run_dir, log_path, *device)
             : !hf_dirs.empty() ? trainer::plan_hf(hf_dirs, probe_ids, coupling, log_path, hf_step, *device)
                                : trainer::plan_torchscript(torchscript, probes, coupling, log_path, *device);
      coupling::check_memory(plan->memory, *device, job.distributed() ? job.local_world_size : 1, max_memory,
                             coupling::kMeasurementMemoryAdvice);
      spdlog::info("peak memory estimate: {}", plan->memory.str());
    } catch (...) {
      failure = std::current_exception();
    }
    trainer::rethrow_if_any_rank_failed(failure, "checking the inputs", comm);
    const auto result = trainer::run_analysis(*plan, *device, comm);
    spdlog::info("{}: {} model(s) measured, {} already in the log | peak RSS {:.0f} MiB", result.log_path,
                 result.measured, result.skipped, coupling::process_peak_memory_mib());
    return 0;
  } catch (...) {
    return trainer::report_failure("measure fewer probes or tokens; the same command continues the log",
                                   trainer::measurement_notes({{"MeasurementOptions::max_row_bytes",
                                                                "coupling-analyze keeps the cap at 256 MiB"}}));
  }
}
