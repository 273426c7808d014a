#include "trainer/training_loop.h"

#include "coupling/callback.h"
#include "coupling/coupling_callback.h"
#include "coupling/data_parallel.h"
#include "coupling/device.h"
#include "coupling/error.h"
#include "coupling/version.h"
#include "trainer/checkpoint.h"
#include "trainer/files.h"
#include "trainer/json_object.h"
#include "trainer/lr_schedule.h"
#include "trainer/runtime.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>

namespace fs = std::filesystem;

namespace trainer {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string format_duration(double seconds) {
  const auto total = static_cast<int64_t>(std::llround(seconds));
  if (total >= 3600) return fmt::format("{}h{:02d}m", total / 3600, (total % 3600) / 60);
  if (total >= 60) return fmt::format("{}m{:02d}s", total / 60, total % 60);
  return fmt::format("{}s", total);
}

/// AdamW with weight decay on matrices and embeddings only (not on biases or LayerNorm gains).
std::unique_ptr<torch::optim::AdamW> make_optimizer(torch::nn::Module& model, const TrainConfig& train) {
  std::vector<at::Tensor> decayed, not_decayed;
  for (const auto& p : model.parameters()) (p.dim() >= 2 ? decayed : not_decayed).push_back(p);
  auto options = torch::optim::AdamWOptions(train.lr).betas({0.9, 0.95}).eps(1e-8);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(options).weight_decay(train.weight_decay)));
  groups.emplace_back(not_decayed, std::make_unique<torch::optim::AdamWOptions>(
                                       torch::optim::AdamWOptions(options).weight_decay(0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), options);
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

/// [ranks, S]: every rank's LibTorch generator state (each rank draws its own dropout masks).
at::Tensor every_rank_generator_state(coupling::Communicator* communicator) {
  const auto own = at::detail::getDefaultCPUGenerator().get_state();
  return communicator ? at::stack(communicator->all_gather(own, "the ranks' generator states")) : own.unsqueeze(0);
}

/// Appends lines to a CSV log, writing the header when the file is new; flushed per line.
class CsvLog {
 public:
  CsvLog(const std::string& path, const std::string& header) {
    const bool fresh = !fs::exists(path);
    out_.open(path, std::ios::app);
    if (!out_) throw coupling::IoError("cannot open log " + path + " for appending");
    if (fresh) out_ << header << '\n' << std::flush;
  }
  void line(const std::string& text) { out_ << text << '\n' << std::flush; }

 private:
  std::ofstream out_;
};

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag) {
  std::vector<int64_t> values;
  std::istringstream list(text);
  std::string item;
  while (std::getline(list, item, ',')) {
    try {
      size_t used = 0;
      values.push_back(std::stoll(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw coupling::ConfigError(flag + " '" + text + "' is not a comma-separated list of integers");
    }
  }
  if (values.empty()) throw coupling::ConfigError(flag + " is empty: give at least one value");
  return values;
}

coupling::MeasurementSchedule measurement_schedule(const CouplingConfig& c) {
  auto schedule = coupling::MeasurementSchedule::parse(c.measure_schedule);
  if (c.measure_every > 0) schedule.every = c.measure_every;
  return schedule;
}

/// The coupling instrumentation of a run, prepared and checked before any file is written.
struct Instrumentation {
  at::Tensor probes;
  coupling::CouplingCallbackOptions options;
};

Instrumentation prepare_instrumentation(const RunDefinition& run, const TrainingTask& task, const RunPaths& paths) {
  const CouplingConfig& c = run.coupling;
  Instrumentation result;
  if (!c.enabled()) return result;
  result.probes = task.probes(c.probes, static_cast<uint64_t>(run.train.seed) + 1);
  auto& options = result.options;
  options.log_path = c.log.empty() ? paths.coupling_log : c.log;
  if (fs::is_directory(options.log_path)) {
    throw coupling::IoError("--log " + options.log_path + " is a directory: give a file name");
  }
  options.measurement = measurement_options(c, task.token_names());
  options.schedule = measurement_schedule(c);
  options.max_overhead = c.max_overhead;
  options.model = run.model_kind;
  options.model_config = task.model_config_text(c.probes);
  options.seed = run.train.seed;
  options.training_precision = run.train.precision;
  return result;
}

/// Where this rank trains: --device, where "cuda" and "auto" mean the GPU of the rank's LOCAL_RANK.
c10::Device training_device(const std::string& spec, const coupling::Communicator* communicator) {
  return coupling::resolve_rank_device(spec, communicator ? coupling::resolve_dist_env().local_rank : 0);
}

int64_t count_parameters(const torch::nn::Module& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

std::string join_metrics(const std::vector<Metric>& metrics) {
  std::string text;
  for (const auto& [name, value] : metrics) text += fmt::format("{}{} {:.4f}", text.empty() ? "" : " | ", name, value);
  return text;
}

}  // namespace

coupling::MeasurementOptions measurement_options(const CouplingConfig& c, const std::map<std::string, int64_t>& names) {
  coupling::MeasurementOptions options;
  options.k_grid = parse_int_list(c.k, "--k");
  if (c.tokens == "last") {
    options.tokens.mode = coupling::TokenSelection::Mode::kLast;
  } else if (c.tokens == "all") {
    options.tokens.mode = coupling::TokenSelection::Mode::kAll;
  } else {
    options.tokens.mode = coupling::TokenSelection::Mode::kList;
    std::string numeric = c.tokens;  // named tokens (ViT: cls, center) become their indices
    for (const auto& [name, token] : names) {
      for (size_t at = numeric.find(name); at != std::string::npos; at = numeric.find(name)) {
        numeric.replace(at, name.size(), std::to_string(token));
      }
    }
    options.tokens.tokens = parse_int_list(numeric, "--tokens");
  }
  options.spectrum = c.spectrum == "randomized" ? coupling::SpectrumMethod::kRandomized
                     : c.spectrum == "exact"    ? coupling::SpectrumMethod::kExact
                                                : coupling::SpectrumMethod::kAuto;
  return options;
}

RunPaths::RunPaths(const std::string& out_dir)
    : out(out_dir),
      config((fs::path(out_dir) / "config.toml").string()),
      train_log((fs::path(out_dir) / "train_log.csv").string()),
      eval_log((fs::path(out_dir) / "eval_log.csv").string()),
      summary((fs::path(out_dir) / "summary.json").string()),
      coupling_log((fs::path(out_dir) / "coupling.h5").string()) {}

template <class RunConfig>
RunConfig config_for_resume(const std::string& run_dir, const RunConfig& requested,
                            const std::set<std::string>& explicit_flags) {
  if (explicit_flags.count("out") > 0 && requested.train.out != run_dir) {
    throw coupling::ConfigError("--out " + requested.train.out + " differs from --resume " + run_dir +
                                ": a resumed run continues in its own directory; drop --out");
  }
  const auto checkpoint = latest_checkpoint(run_dir);
  if (!checkpoint) {
    throw coupling::CheckpointError("--resume " + run_dir + ": no checkpoint under " + run_dir +
                                    "/checkpoints; start a new run with --out instead");
  }
  RunConfig config = merge_for_resume(read_config_file<RunConfig>((fs::path(*checkpoint) / "config.toml").string()),
                                         requested, explicit_flags);
  config.train.out = run_dir;
  return config;
}

template GptRunConfig config_for_resume(const std::string&, const GptRunConfig&, const std::set<std::string>&);
template VitRunConfig config_for_resume(const std::string&, const VitRunConfig&, const std::set<std::string>&);

void TrainingTask::to(c10::Device device) {
  device_ = device;
  model().to(device);
}

double TrainSummary::metric(const std::string& name) const {
  const auto found = metrics.find(name);
  if (found == metrics.end()) throw coupling::Error("the run's summary has no metric '" + name + "'");
  return found->second;
}

TrainSummary run_training(const RunDefinition& run, const TaskFactory& make_task, bool resume,
                          coupling::Communicator* communicator) {
  const int64_t rank = communicator ? communicator->rank() : 0;
  const int64_t world_size = communicator ? communicator->world_size() : 1;
  const bool writer = rank == 0;  // rank 0 alone writes the run's files
  if (communicator) coupling::check_same_config(run.config_fields, *communicator);
  const TrainConfig& train = run.train;
  const RunPaths paths(train.out);
  const CouplingConfig& instrument = run.coupling;

  // Everything that can fail on bad input is checked before the first file is written, and no
  // rank goes on unless every rank passed.
  std::unique_ptr<TrainingTask> task;
  Instrumentation instrumentation;
  std::optional<std::string> resume_from;
  c10::Device device(c10::kCPU);
  std::exception_ptr setup_failure;
  try {
    device = training_device(train.device, communicator);
    coupling::AutocastScope::validate(train.precision, device);
    if (train.batch % world_size != 0) {
      throw coupling::ConfigError(fmt::format("--batch {} is the global batch and must be a multiple of the {} ranks",
                                              train.batch, world_size));
    }
    at::manual_seed(static_cast<uint64_t>(train.seed));  // the same initial model on every rank
    task = make_task();
    instrumentation = prepare_instrumentation(run, *task, paths);
    resume_from = latest_checkpoint(train.out);
    if (resume && !resume_from) {
      throw coupling::CheckpointError("--resume " + train.out + ": no checkpoint under " + train.out +
                                      "/checkpoints; start a new run with --out instead");
    }
    if (!resume && resume_from) {
      throw coupling::ConfigError("--out " + train.out + " already holds a run (" + *resume_from +
                                  "): continue it with --resume " + train.out + ", or choose a new --out");
    }
    if (writer) {
      if (instrument.enabled() && !resume && fs::exists(instrumentation.options.log_path)) {
        throw coupling::ConfigError("coupling log " + instrumentation.options.log_path +
                                    " already exists: resume its run with --resume, or choose another --log");
      }
      ensure_writable_directory(train.out);
      if (instrument.enabled()) {
        ensure_writable_directory(fs::absolute(instrumentation.options.log_path).parent_path().string(), "--log");
      }
    }
  } catch (const std::exception&) {
    setup_failure = std::current_exception();
  }
  coupling::rethrow_if_any_rank_failed(setup_failure, "the run's setup", communicator);
  torch::nn::Module& model = task->model();
  coupling::CouplingCallbackOptions& coupling_options = instrumentation.options;
  coupling_options.communicator = communicator;
  setup_compute(train.threads);
  task->to(device);
  if (instrumentation.probes.defined()) instrumentation.probes = instrumentation.probes.to(device);

  auto optimizer = make_optimizer(model, train);
  TrainerState state;
  if (resume_from) {
    state = load_checkpoint(*resume_from, model, *optimizer, rank, world_size);
    task->restore_sampler_state(state.sampler_rng, state.step);
    if (device.is_cuda()) {
      // Checkpoints hold the CPU generator only: a CUDA run's dropout generator restarts from
      // (seed, rank, step), so the ranks keep drawing masks of their own.
      auto generator = at::globalContext().defaultGenerator(device);
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_current_seed(static_cast<uint64_t>(train.seed) + 1000003ULL * static_cast<uint64_t>(rank) +
                                 static_cast<uint64_t>(state.step));
    }
  } else if (rank > 0) {
    at::manual_seed(static_cast<uint64_t>(train.seed) + static_cast<uint64_t>(rank));  // own dropout masks
  }
  const std::vector<at::Tensor> parameters = model.parameters();
  std::optional<coupling::GradientAverager> averager;
  if (communicator) {
    auto values = coupling::detached(parameters);
    communicator->broadcast(values, 0, "rank 0's parameters");
    averager.emplace(parameters, *communicator);
  }

  // Instrumentation through the same public API a user's loop would use. It starts before any
  // run file is touched, so a log that cannot be resumed leaves the run directory as it was.
  coupling::CallbackList callbacks;
  std::shared_ptr<coupling::CouplingCallback> coupling_callback;
  if (instrument.enabled()) {
    coupling_callback =
        std::make_shared<coupling::CouplingCallback>(task->adapter(), instrumentation.probes, coupling_options);
    callbacks.add(coupling_callback);
  }
  if (resume_from) callbacks.on_checkpoint_load(state.step, state.callback_state);
  std::exception_ptr begin_failure;  // e.g. rank 0 cannot resume the log
  try {
    callbacks.on_train_begin({state.step, train.steps, resume_from.has_value()});
  } catch (const coupling::Error&) {
    begin_failure = std::current_exception();
  }
  coupling::rethrow_if_any_rank_failed(begin_failure, "the start of the instrumentation", communicator);

  if (writer) {
    if (resume_from) {
      // train_log rows are keyed by the update's 0-based index, eval_log rows by updates completed.
      truncate_csv_log(paths.train_log, state.step);
      truncate_csv_log(paths.eval_log, state.step + 1);
    } else {
      for (const auto& stale : {paths.train_log, paths.eval_log}) fs::remove(stale);
    }
    fs::remove(paths.summary);  // rewritten at the end; a stale one would describe another run
    write_file_atomic(paths.config, run.config_toml);
  }
  if (resume_from) spdlog::info("resumed from {} at step {}", *resume_from, state.step);

  const int64_t parameter_count = count_parameters(model);
  spdlog::info("libcoupling {} | {}, {:.2f}M parameters | LibTorch {} on {}, {}", coupling::version(),
               task->describe(), parameter_count / 1e6, coupling::torch_version(), device.str(), train.precision);
  if (communicator) {
    spdlog::info("data-parallel: {} ranks ({}), {} sequences per rank per step, gradients in {} bucket(s)",
                 world_size, communicator->backend(), train.batch / world_size, averager->buckets());
  }
  const LrSchedule schedule{train.lr, train.min_lr_fraction, train.warmup, train.steps};
  std::optional<CsvLog> train_log, eval_log;
  if (writer) {
    train_log.emplace(paths.train_log, "step,loss,lr,grad_norm," + task->unit() + "_seen,train_seconds");
  }
  const int64_t items_per_step = task->items_per_step(train.batch);

  const auto session_start = Clock::now();
  const double seconds_before = state.train_seconds;
  const int64_t first_step = state.step;
  std::vector<Metric> held_out;  // the latest evaluation
  double loss_reduce_seconds = 0.0;
  model.train();
  while (state.step < train.steps) {
    const int64_t step = state.step;
    const double lr = schedule.at(step);
    set_learning_rate(*optimizer, lr);
    optimizer->zero_grad();
    at::Tensor loss;
    {
      coupling::AutocastScope autocast(train.precision, device);  // the forward only, as in PyTorch
      loss = task->training_loss(train.batch, rank, world_size);
    }
    double loss_value = loss.item<double>();
    if (communicator) {  // the global batch's loss, so every rank sees (and stops on) the same value
      const auto reduce_start = Clock::now();
      loss_value = coupling::sum_over_ranks({loss_value}, communicator, "the training loss")[0] /
                   static_cast<double>(world_size);
      loss_reduce_seconds += seconds_since(reduce_start);
    }
    if (!std::isfinite(loss_value)) {
      throw coupling::DivergenceError(fmt::format(
          "training loss is {} at step {}: the run stopped without saving; lower --lr or raise --warmup "
          "and resume from the last checkpoint",
          loss_value, step));
    }
    loss.backward();
    if (averager) averager->average();
    // With clipping off, an infinite bound makes clip_grad_norm_ just measure the norm.
    const double grad_norm = torch::nn::utils::clip_grad_norm_(
        parameters, train.grad_clip > 0.0 ? train.grad_clip : std::numeric_limits<double>::infinity());
    if (!std::isfinite(grad_norm)) {
      throw coupling::DivergenceError(fmt::format(
          "gradient norm is {} at step {}: the run stopped without saving; lower --lr and resume", grad_norm, step));
    }
    optimizer->step();
    state.step = step + 1;
    state.tokens_seen += items_per_step;
    state.train_seconds = seconds_before + seconds_since(session_start);
    if (train_log) {
      train_log->line(fmt::format("{},{:.6f},{:.6e},{:.6f},{},{:.3f}", step, loss_value, lr, grad_norm,
                                  state.tokens_seen, state.train_seconds));
    }

    const bool last = state.step == train.steps;
    const bool checkpoint_now = (train.ckpt_every > 0 && state.step % train.ckpt_every == 0) || last;
    if (communicator && ((train.check_every > 0 && state.step % train.check_every == 0) || checkpoint_now)) {
      coupling::check_ranks_agree(parameters, *communicator, state.step);
    }
    callbacks.on_step_end(
        {state.step, train.steps, loss_value, lr, state.tokens_seen, state.train_seconds, checkpoint_now});
    if (state.step % train.log_every == 0 || last) {
      const double elapsed = seconds_since(session_start);
      const double rate = static_cast<double>((state.step - first_step) * items_per_step) / elapsed;
      const double eta = elapsed / static_cast<double>(state.step - first_step) * static_cast<double>(train.steps - state.step);
      spdlog::info("step {:>6}/{} | loss {:.4f} | lr {:.2e} | grad {:.3f} | {:.1f}k {}/s | ETA {}", state.step,
                   train.steps, loss_value, lr, grad_norm, rate / 1e3, task->unit(), format_duration(eta));
    }
    if ((train.eval_every > 0 && state.step % train.eval_every == 0) || last) {
      held_out = task->evaluate(communicator);
      if (writer) {
        if (!eval_log) {
          std::string header = "step";
          for (const auto& metric : held_out) header += "," + metric.first;
          eval_log.emplace(paths.eval_log, header + "," + task->unit() + "_seen,train_seconds");
        }
        std::string row = std::to_string(state.step);
        for (const auto& metric : held_out) row += fmt::format(",{:.6f}", metric.second);
        eval_log->line(fmt::format("{},{},{:.3f}", row, state.tokens_seen, state.train_seconds));
      }
      spdlog::info("eval step {}: {}", state.step, join_metrics(held_out));
      callbacks.on_eval({state.step, held_out.front().second});
    }
    if (checkpoint_now) {
      state.callback_state.clear();
      callbacks.on_checkpoint_save(state.step, state.callback_state);
      state.sampler_rng = task->sampler_state();
      state.torch_rng = every_rank_generator_state(communicator);
      if (writer) {
        save_checkpoint(train.out, state, model, *optimizer, run.config_toml);
        spdlog::info("checkpoint: {}", checkpoint_dir(train.out, state.step));
      }
    }
  }

  state.train_seconds = seconds_before + seconds_since(session_start);
  callbacks.on_train_end({state.step, train.steps, 0.0, schedule.at(state.step), state.tokens_seen,
                          state.train_seconds, false});
  TrainSummary summary;
  summary.final_step = state.step;
  if (coupling_callback) {
    summary.measure_seconds = coupling_callback->measure_seconds();
    summary.overhead_fraction = coupling_callback->overhead_fraction(state.train_seconds);
  }
  summary.parameters = parameter_count;
  if (held_out.empty()) held_out = task->evaluate(communicator);
  for (const auto& metric : held_out) summary.metrics[metric.first] = metric.second;
  for (const auto& metric : task->final_metrics(communicator)) summary.metrics[metric.first] = metric.second;
  summary.wall_seconds = state.train_seconds;
  const double session_seconds = seconds_since(session_start);
  summary.items_per_second =
      session_seconds > 0.0 ? static_cast<double>((state.step - first_step) * items_per_step) / session_seconds : 0.0;
  summary.world_size = world_size;
  summary.communication_seconds = (averager ? averager->seconds() : 0.0) + loss_reduce_seconds;
  if (writer) {
    JsonObject json;
    json.add("final_step", summary.final_step);
    for (const auto& [name, value] : summary.metrics) json.add(name, value);
    json.add(task->unit() + "_per_second", summary.items_per_second)
        .add("wall_seconds", summary.wall_seconds)
        .add("parameters", summary.parameters)
        .add("measure_seconds", summary.measure_seconds)
        .add("overhead_fraction", summary.overhead_fraction)
        .add("world_size", summary.world_size)
        .add("communication_seconds", summary.communication_seconds)
        .add("coupling_log", instrument.enabled() ? coupling_options.log_path : std::string("none"))
        .add("model", run.model_kind)
        .add("data", train.data)
        .add("libcoupling_version", coupling::version());
    write_file_atomic(paths.summary, json.str());
  }
  std::vector<Metric> all_metrics(summary.metrics.begin(), summary.metrics.end());
  spdlog::info("summary: step {} | {} | {:.0f} {}/s | {}", summary.final_step, join_metrics(all_metrics),
               summary.items_per_second, task->unit(), format_duration(summary.wall_seconds));
  if (communicator) {
    spdlog::info("data-parallel: {:.1f} s of {:.1f} s training in gradient/loss all-reduces ({:.1f}%)",
                 summary.communication_seconds, session_seconds,
                 100.0 * summary.communication_seconds / std::max(session_seconds, 1e-9));
  }
  return summary;
}

}  // namespace trainer
