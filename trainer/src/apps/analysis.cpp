#include "trainer/apps/analysis.h"

#include "coupling/dist/distributed_measurement.h"
#include "coupling/engine/probe_bootstrap.h"
#include "coupling/engine/progress.h"
#include "coupling/error.h"
#include "coupling/log/coupling_log.h"
#include "coupling/models/hf/directory.h"
#include "coupling/models/hf/model.h"
#include "coupling/models/torchscript_model.h"
#include "trainer/data/byte_corpus.h"
#include "trainer/data/image_dataset.h"
#include "trainer/data/probe_ids.h"
#include "trainer/loop/checkpoint.h"
#include "trainer/loop/gpt_trainer.h"
#include "trainer/loop/vit_trainer.h"
#include "trainer/parallel/data_parallel.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <utility>

namespace fs = std::filesystem;

namespace trainer {
namespace hf = coupling::hf;
namespace {

/// The log metadata of a post-hoc analysis: one process, no resume note, no data hash.
coupling::LogMetadata analysis_metadata(std::string model, std::string model_config, std::string engine_config,
                                        int64_t seed, at::Tensor probes) {
  coupling::LogMetadata metadata;
  metadata.model = std::move(model);
  metadata.model_config = std::move(model_config);
  metadata.engine_config = std::move(engine_config);
  metadata.seed = seed;
  metadata.probes = std::move(probes);
  return metadata;
}

std::string config_path(const std::string& checkpoint) { return (fs::path(checkpoint) / "config.toml").string(); }

/// "gpt" or "vit", from the first line to_toml writes ("# coupling-train gpt configuration ...").
std::string model_kind(const std::string& checkpoint) {
  std::istringstream in(read_checkpoint_config(checkpoint));
  std::string first_line;
  std::getline(in, first_line);
  for (const char* kind : {GptRunConfig::kModel, VitRunConfig::kModel}) {
    if (first_line.rfind(std::string("# coupling-train ") + kind + " ", 0) == 0) return kind;
  }
  throw coupling::CheckpointError("cannot tell which bundled model " + config_path(checkpoint) +
                                  " describes (its first line should read '# coupling-train gpt|vit configuration'): "
                                  "is this a coupling-train run?");
}

/// Throws ConfigError unless `other` trains the same model on the same data as `first`.
template <class RunConfig>
void require_same_model(const RunConfig& first, const RunConfig& other, const std::string& first_dir,
                        const std::string& other_dir) {
  std::string differing;
  auto compare = [&](const char* name, const char*, ResumePolicy, const auto& a, const auto& b) {
    if (!(a == b)) differing += (differing.empty() ? "" : ", ") + std::string(name);
  };
  RunConfig::visit_model(compare, first, other);
  if (!differing.empty()) {
    throw coupling::ConfigError("checkpoint " + other_dir + " holds another model than " + first_dir + " (" +
                                differing + " differ): analyse the checkpoints of one run at a time");
  }
}

template <class RunConfig>
AnalysisPlan plan_run(const std::map<int64_t, std::string>& found, const std::string& log_path,
                      std::unique_ptr<TrainingTask> (*make_task)(const RunConfig&), c10::Device device) {
  const std::string& first_dir = found.begin()->second;
  auto config_of = [](const std::string& dir) {
    return parse_config_text<RunConfig>(read_checkpoint_config(dir), config_path(dir));
  };
  const auto config = config_of(first_dir);
  for (const auto& [step, dir] : found) require_same_model(config, config_of(dir), first_dir, dir);
  at::manual_seed(static_cast<uint64_t>(config.train.seed));
  const std::shared_ptr<TrainingTask> task = make_task(config);
  AnalysisPlan plan;
  plan.log_path = log_path;
  plan.options = measurement_options(config.coupling, task->token_names());
  plan.metadata = analysis_metadata(RunConfig::kModel, task->model_config_text(config.coupling.probes),
                                    plan.options.str(), config.train.seed,
                                    task->probes(config.coupling.probes, static_cast<uint64_t>(config.train.seed) + 1));
  plan.metadata.training_precision = config.train.precision;
  plan.items_per_step = task->items_per_step(config.train.batch);
  task->to(device);  // checkpoints then load straight onto the device
  const std::shared_ptr<coupling::ModelAdapter> adapter = task->adapter();
  plan.memory = coupling::estimate_measurement_memory(
      coupling::resolve_layout(*adapter, plan.metadata.probes.to(device), plan.options), plan.options,
      {adapter->tensor_bytes(), 0}, device, adapter->supports_token_local());
  for (const auto& [step, dir] : found) {
    plan.models.push_back({step, dir, [task, adapter, dir = dir]() -> coupling::ModelAdapter& {
                             load_model(dir, task->model());
                             return *adapter;
                           }});
  }
  return plan;
}

/// The training step a Hugging Face directory's name gives (step143000, step_1000, checkpoint-500).
std::optional<int64_t> step_of_hf_directory(const hf::HfDirectory& directory) {
  static const std::regex pattern("(?:^|[^A-Za-z0-9])(?:step|checkpoint)[-_]?([0-9]{1,18})$", std::regex::icase);
  const std::string name = fs::path(directory.dir()).filename().string();
  std::smatch match;
  if (!std::regex_search(name, match, pattern)) return std::nullopt;
  return std::stoll(match[1].str());
}

/// A Hugging Face directory whose config, headers and every tensor's name, shape and dtype were
/// checked (no data read).
std::shared_ptr<const hf::HfDirectory> open_checked_hf_directory(const std::string& dir) {
  auto directory = std::make_shared<const hf::HfDirectory>(dir);
  hf::HfTransformer checked(directory->config(), hf::directory_checker(*directory));
  return directory;
}

/// The last number in a file's name (step_1200.pt -> 1200), if any.
std::optional<int64_t> step_in_name(const fs::path& file) {
  static const std::regex digits("[0-9]+");
  const std::string stem = file.stem().string();
  std::optional<int64_t> step;
  for (auto it = std::sregex_iterator(stem.begin(), stem.end(), digits); it != std::sregex_iterator(); ++it) {
    step = std::stoll(it->str());
  }
  return step;
}

/// Throws coupling::ConfigError on every rank unless every rank planned the same analysis: the
/// same models at the same steps, model, options, probes and log.
void check_same_plan(const AnalysisPlan& plan, coupling::Communicator& communicator) {
  std::string models;
  for (const auto& model : plan.models) models += fmt::format("{}={};", model.step, model.path);
  const auto probes = plan.metadata.probes.contiguous().cpu();
  const std::string probe_bytes(static_cast<const char*>(probes.data_ptr()), static_cast<size_t>(probes.nbytes()));
  check_same_config({{"the models and their steps", models},
                     {"the model", plan.metadata.model + " " + plan.metadata.model_config},
                     {"the measurement options", plan.metadata.engine_config},
                     {"the probes", c10::str(probes.sizes()) + probe_bytes},
                     {"--log", plan.log_path}},
                    communicator);
}

/// The end-of-run summary: each measured step's depth m_K (ujv/norm) with its 95% interval over
/// probes, and the paired change from the first to the last step measured.
/// What the end-of-run summary shows of one measured step.
struct StepSummary {
  int64_t step;
  at::Tensor per_probe;         ///< [P, nK] depth m_K (ujv/norm) of each probe
  coupling::CouplingNull null;  ///< its uncoupled null: mean and sd of the probe mean, [nK] each
};

void print_summary(const std::vector<StepSummary>& per_probe, const std::vector<int64_t>& k_grid) {
  if (per_probe.empty()) return;
  const int64_t probes = per_probe.front().per_probe.size(0);
  const coupling::ProbeBootstrap bootstrap(probes);
  auto column = [](const at::Tensor& values, size_t k) {
    const auto c = values.select(1, static_cast<int64_t>(k)).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  };
  auto text = [](const coupling::Interval& interval) {
    return std::isnan(interval.low)
               ? fmt::format("{:.4f}", interval.mean)
               : fmt::format("{:.4f} [{:.4f}, {:.4f}]", interval.mean, interval.low, interval.high);
  };
  spdlog::info(
      "summary: depth m_K (ujv/norm, lower = more coupled), mean over {} probe(s){}; (null: the same for "
      "Haar-random bases, +- its sd: below null - 2 sd is coupled)",
      probes,
      probes < 2 ? " (one probe: no interval)"
                 : ", 95% bootstrap interval over probes, paired across steps (coupling-log --differ)");
  for (const auto& [step, values, null] : per_probe) {
    std::string line = fmt::format("  step {:>6}:", step);
    for (size_t k = 0; k < k_grid.size(); ++k) {
      const auto at = static_cast<int64_t>(k);
      line += fmt::format(" K={} {} (null {:.4f} +- {:.4f})", k_grid[k], text(bootstrap.interval(column(values, k))),
                          null.mean[at].item<double>(), null.sd[at].item<double>());
    }
    spdlog::info("{}", line);
  }
  if (per_probe.size() < 2 || probes < 2) return;
  const auto& first_step = per_probe.front().step;
  const auto& first = per_probe.front().per_probe;
  const auto& last_step = per_probe.back().step;
  const auto& last = per_probe.back().per_probe;
  std::string line = fmt::format("  change from step {} to step {}:", first_step, last_step);
  for (size_t k = 0; k < k_grid.size(); ++k) {
    const auto change = bootstrap.difference(column(first, k), column(last, k));
    line += fmt::format(" K={} {:+.4f} [{:+.4f}, {:+.4f}] ({})", k_grid[k], change.mean, change.low, change.high,
                        std::isnan(change.low) ? "non-finite values"
                        : change.excludes(0.0) ? "differ"
                                               : "cannot tell apart");
  }
  spdlog::info("{}", line);
}

}  // namespace

AnalysisPlan plan_checkpoints(const std::string& run_dir, const std::string& log_path, c10::Device device) {
  const auto found = checkpoints(run_dir);
  if (found.empty()) {
    throw coupling::CheckpointError("no checkpoints under " + run_dir +
                                    "/checkpoints: --checkpoints takes a coupling-train run directory");
  }
  const std::string log = log_path.empty() ? (fs::path(run_dir) / "analysis.h5").string() : log_path;
  spdlog::info("analysing {} checkpoint(s) of {} (steps {}..{}) into {}", found.size(), run_dir, found.begin()->first,
               found.rbegin()->first, log);
  // Before anything in them is read (config.toml included) and before the log is created.
  for (const auto& [step, dir] : found) verify_checkpoint(dir);
  if (model_kind(found.begin()->second) == GptRunConfig::kModel) {
    return plan_run<GptRunConfig>(found, log, make_gpt_task, device);
  }
  return plan_run<VitRunConfig>(found, log, make_vit_task, device);
}

at::Tensor load_probes(const ProbeSource& source) {
  const int given = !source.text.empty() + !source.idx.empty() + !source.tensor.empty();
  if (given != 1) {
    throw coupling::ConfigError(
        "give exactly one probe source: --probe-text FILE, --probe-idx FILE or "
        "--probe-tensor FILE");
  }
  if (!source.tensor.empty()) return coupling::load_saved_tensor(source.tensor);
  if (!source.text.empty()) {
    return ByteCorpus::from_file(source.text).probe_windows(source.count, source.length, source.seed);
  }
  const auto images = read_idx(source.idx);
  if (images.dim() != 3) {
    throw coupling::DataError(source.idx + " does not hold images [N, H, W] (shape " + c10::str(images.sizes()) + ")");
  }
  return (seeded_choice(images, source.count, source.seed, source.idx).to(at::kFloat) / 255.0).unsqueeze(1);
}

AnalysisPlan plan_torchscript(const std::vector<std::string>& paths, const ProbeSource& probe_source,
                              const CouplingConfig& coupling, const std::string& log_path, c10::Device device) {
  std::vector<fs::path> files;
  for (const auto& path : paths) {
    if (fs::is_directory(path)) {
      for (const auto& entry : fs::directory_iterator(path)) {
        if (entry.is_regular_file() && entry.path().extension() == ".pt") files.push_back(entry.path());
      }
    } else if (fs::is_regular_file(path)) {
      files.push_back(path);
    } else {
      throw coupling::IoError("--torchscript " + path + " is neither a file nor a directory");
    }
  }
  if (files.empty()) throw coupling::IoError("no TorchScript files (*.pt) in the --torchscript arguments");
  std::map<int64_t, fs::path> by_step;
  for (const auto& file : files) {
    const auto step = step_in_name(file);
    if (!step && files.size() > 1) {
      throw coupling::ConfigError("cannot tell the step of " + file.string() +
                                  ": put the training step in its name (e.g. step_1200.pt)");
    }
    const auto [it, fresh] = by_step.emplace(step.value_or(0), file);
    if (!fresh) {
      throw coupling::ConfigError(fmt::format("{} and {} both name step {}: give one model per step",
                                              it->second.string(), file.string(), it->first));
    }
  }
  const std::shared_ptr<coupling::ModelAdapter> first =
      coupling::load_torchscript_model(by_step.begin()->second.string(), device);
  AnalysisPlan plan;
  plan.log_path = log_path;
  const auto probes = load_probes(probe_source);
  plan.options = measurement_options(coupling, {});
  plan.metadata = analysis_metadata(
      "torchscript", fmt::format("blocks={} causal={} probes={}", first->num_blocks(), first->causal(), probes.size(0)),
      plan.options.str(), static_cast<int64_t>(probe_source.seed), probes);
  // A TorchScript model's shape is known only from a forward pass: the first model's, here.
  plan.memory = coupling::estimate_measurement_memory(coupling::resolve_layout(*first, probes.to(device), plan.options),
                                                      plan.options, {first->tensor_bytes(), 0}, device,
                                                      first->supports_token_local());
  auto current = std::make_shared<std::shared_ptr<coupling::ModelAdapter>>();
  for (const auto& [step, file] : by_step) {
    plan.models.push_back({step, file.string(), [current, first, device, file = file]() -> coupling::ModelAdapter& {
                             *current = coupling::load_torchscript_model(file.string(), device);
                             if ((*current)->num_blocks() != first->num_blocks() ||
                                 (*current)->causal() != first->causal()) {
                               throw coupling::ConfigError(file.string() +
                                                           " has another structure (blocks, causal) than "
                                                           "the first model: analyse one model family at a time");
                             }
                             return **current;
                           }});
  }
  spdlog::info("analysing {} TorchScript model(s) (steps {}..{}) on {} probes into {}", plan.models.size(),
               by_step.begin()->first, by_step.rbegin()->first, probes.size(0), log_path);
  return plan;
}

AnalysisPlan plan_hf(const std::vector<std::string>& dirs, const std::string& probe_ids_path,
                     const CouplingConfig& coupling, const std::string& log_path, std::optional<int64_t> step,
                     c10::Device device) {
  if (dirs.empty()) throw coupling::ConfigError("--hf needs at least one model directory");
  if (step && *step < 0) throw coupling::ConfigError(fmt::format("--step {} is negative: steps count from 0", *step));
  if (step && dirs.size() > 1) {
    throw coupling::ConfigError(
        "--step names the step of a single --hf directory; several take theirs from their "
        "names (step143000, step_1000, checkpoint-500)");
  }
  // Everything is read and checked before the log is created. The directories' files are closed
  // again (a long series of many-shard models would hold too many open) and reopened, and checked
  // again, when their model is measured.
  struct Checked {
    std::string dir;  ///< normalised (HfDirectory::dir)
    hf::HfConfig config;
  };
  std::map<int64_t, Checked> by_step;
  for (const auto& dir : dirs) {
    const auto directory = open_checked_hf_directory(dir);
    const auto named = step ? step : step_of_hf_directory(*directory);
    if (!named && dirs.size() > 1) {
      throw coupling::ConfigError("cannot tell the step of --hf " + dir +
                                  ": name the directories stepN, step_N or "
                                  "checkpoint-N (as Pythia's and the Trainer's checkpoints are)");
    }
    if (!by_step.empty() && directory->config().summary() != by_step.begin()->second.config.summary()) {
      throw coupling::ConfigError("--hf " + dir + " holds another architecture than " + by_step.begin()->second.dir +
                                  " (config.json differs): analyse one model's checkpoints at a time");
    }
    const auto [it, fresh] = by_step.emplace(named.value_or(0), Checked{directory->dir(), directory->config()});
    if (!fresh) {
      throw coupling::ConfigError(
          fmt::format("--hf {} and {} both name step {}: give one directory per step", dir, it->second.dir, it->first));
    }
  }
  const auto& config = by_step.begin()->second.config;
  const auto ids = read_probe_ids(probe_ids_path);
  const auto [smallest, largest] = std::minmax_element(ids.ids.begin(), ids.ids.end());
  config.check_probes(ids.tokens, *smallest, *largest);
  const auto probes = at::tensor(ids.ids, at::kLong).view({ids.probes, ids.tokens});
  AnalysisPlan plan;
  plan.log_path = log_path;
  plan.options = measurement_options(coupling, {});
  plan.memory = coupling::estimate_measurement_memory(
      coupling::resolve_layout(ids.probes, ids.tokens, config.layers, config.d_model, config.causal, plan.options),
      plan.options, {config.streamed_bytes(), 0}, device, /*token_local=*/true);
  plan.metadata = analysis_metadata("hf/" + config.model_type, config.summary(), plan.options.str(), 0, probes);
  for (const auto& [model_step, checked] : by_step) {
    plan.metadata.sources += fmt::format("{}step {}: {}", plan.metadata.sources.empty() ? "" : "\n", model_step,
                                         fs::absolute(checked.dir).lexically_normal().string());
  }
  auto current = std::make_shared<std::unique_ptr<hf::HfAdapter>>();
  for (const auto& [model_step, checked] : by_step) {
    plan.models.push_back({model_step, checked.dir, [current, checked = checked, device]() -> coupling::ModelAdapter& {
                             current->reset();  // one model at a time, streamed: one block of it in memory
                             const auto directory = open_checked_hf_directory(checked.dir);
                             if (directory->config().summary() != checked.config.summary()) {
                               throw coupling::ConfigError("--hf " + checked.dir +
                                                           ": its config.json changed while the "
                                                           "series was analysed; run the analysis again");
                             }
                             *current = std::make_unique<hf::HfAdapter>(hf::HfTransformer(directory, device));
                             return **current;
                           }});
  }
  spdlog::info(
      "analysing {} Hugging Face {} model(s) (steps {}..{}; {} blocks, d={}) on {} probes of {} tokens "
      "into {}",
      plan.models.size(), config.model_type, by_step.begin()->first, by_step.rbegin()->first, config.layers,
      config.d_model, ids.probes, ids.tokens, log_path);
  return plan;
}

AnalysisResult run_analysis(const AnalysisPlan& plan, c10::Device device, coupling::Communicator* communicator) {
  const bool writes_log = communicator == nullptr || communicator->rank() == 0;
  if (communicator) check_same_plan(plan, *communicator);
  // Rank 0 opens (or continues) the log and decides which models are left; every rank learns
  // the outcome before anything is measured.
  std::optional<coupling::CouplingLog> log;
  auto to_measure = at::zeros({static_cast<int64_t>(plan.models.size())}, at::kLong);
  std::exception_ptr failure;
  if (writes_log) {
    try {
      auto metadata = plan.metadata;
      metadata.world_size = communicator ? communicator->world_size() : 1;
      log.emplace(fs::exists(plan.log_path)
                      ? coupling::CouplingLog::resume(plan.log_path, metadata, std::numeric_limits<int64_t>::max())
                      : coupling::CouplingLog::create(plan.log_path, metadata));
      const auto done_steps = log->measured_steps();
      const std::set<int64_t> done(done_steps.begin(), done_steps.end());
      const int64_t last_done = done_steps.empty() ? -1 : done_steps.back();
      for (size_t i = 0; i < plan.models.size(); ++i) {
        const auto& model = plan.models[i];
        if (done.count(model.step) > 0) continue;
        if (model.step < last_done) {
          throw coupling::ConfigError(fmt::format(
              "{} (step {}) is older than the last step ({}) in {}: the log's steps must increase; delete the log "
              "to analyse every model again",
              model.path, model.step, last_done, plan.log_path));
        }
        to_measure[static_cast<int64_t>(i)] = 1;
      }
    } catch (...) {
      failure = std::current_exception();
    }
  }
  rethrow_if_any_rank_failed(failure, "opening the log", communicator);
  if (communicator) {
    std::vector<at::Tensor> decision{to_measure};
    communicator->broadcast(decision, 0, "the steps left to measure");
  }
  const auto probes = plan.metadata.probes.to(device);
  AnalysisResult result{plan.log_path, 0, 0};
  const auto count = to_measure.sum().item<int64_t>();
  // Only its ETA is used: the analysis prints one line per model anyway.
  const coupling::ProgressMeter progress("analysis", count, /*interval_seconds=*/0);
  std::vector<StepSummary> per_probe;  // each measured step's depth m_K per probe, and its null
  std::vector<int64_t> k_grid;
  for (size_t i = 0; i < plan.models.size(); ++i) {
    const auto& model = plan.models[i];
    if (to_measure[static_cast<int64_t>(i)].item<int64_t>() == 0) {
      ++result.skipped;
      continue;
    }
    coupling::ModelAdapter* adapter = nullptr;
    try {
      adapter = &model.load();
    } catch (...) {
      failure = std::current_exception();
    }
    rethrow_if_any_rank_failed(failure, fmt::format("loading step {}", model.step), communicator);
    const auto start = std::chrono::steady_clock::now();
    const auto m = communicator ? coupling::measure(*adapter, probes, plan.options, *communicator)
                                : coupling::measure(*adapter, probes, plan.options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (log) {
      try {
        log->append({model.step, model.step, model.step * plan.items_per_step, 0.0, seconds, 0.0}, m);
      } catch (...) {
        failure = std::current_exception();
      }
    }
    rethrow_if_any_rank_failed(failure, fmt::format("writing step {}", model.step), communicator);
    ++result.measured;
    per_probe.push_back({model.step, coupling::depth_coupling_per_probe(m), coupling::depth_coupling_null_summary(m)});
    if (!at::isfinite(per_probe.back().per_probe).all().item<bool>()) {
      spdlog::warn(
          "step {}: the model's values are not finite (a NaN or infinite weight: a diverged run?); its row "
          "is logged with nonfinite = 1 and the series goes on",
          model.step);
    }
    k_grid = m.k_grid;
    const auto& t = m.timings;
    // The ETA counts loading too: the average model so far, times the models left.
    spdlog::info(
        "step {:>6} ({}/{}): {}, {:.1f} s (forward {:.1f}, Jacobians {:.1f}, spectra {:.1f}, coupling {:.1f}) | ETA {}",
        model.step, result.measured + result.skipped, plan.models.size(), coupling::headline(m), seconds, t.forward,
        t.jacobians, t.spectra, t.coupling, coupling::format_duration(progress.eta_seconds(result.measured)));
  }
  print_summary(per_probe, k_grid);
  return result;
}

}  // namespace trainer
