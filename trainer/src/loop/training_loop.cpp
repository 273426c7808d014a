#include "trainer/loop/training_loop.h"

#include "coupling/engine/device.h"
#include "coupling/engine/peak_memory.h"
#include "coupling/engine/progress.h"
#include "coupling/error.h"
#include "coupling/memory_size.h"
#include "coupling/training/callback.h"
#include "coupling/training/coupling_callback.h"
#include "coupling/training/tensorboard_callback.h"
#include "coupling/version.h"
#include "trainer/loop/autocast.h"
#include "trainer/loop/checkpoint.h"
#include "trainer/loop/divergence_error.h"
#include "trainer/loop/files.h"
#include "trainer/loop/lr_schedule.h"
#include "trainer/loop/run_lock.h"
#include "trainer/loop/runtime.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/parallel/env.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <nlohmann/json.hpp>

#include <algorithm>
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

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

/// AdamW with weight decay on matrices and embeddings only (not on biases or LayerNorm gains).
std::unique_ptr<torch::optim::AdamW> make_optimizer(torch::nn::Module& model, const TrainConfig& train) {
  std::vector<at::Tensor> decayed, not_decayed;
  for (const auto& p : model.parameters()) (p.dim() >= 2 ? decayed : not_decayed).push_back(p);
  auto options = torch::optim::AdamWOptions(train.lr).betas({0.9, 0.95}).eps(1e-8);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decayed, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(options).weight_decay(train.weight_decay)));
  groups.emplace_back(
      not_decayed, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(options).weight_decay(0.0)));
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
  CsvLog(const std::string& path, const std::string& header) : path_(path) {
    const bool fresh = !fs::exists(path);
    out_.open(path, std::ios::app);
    if (!out_) throw coupling::IoError("cannot open log " + path + " for appending");
    if (fresh) line(header);
  }
  void line(const std::string& text) {
    out_ << text << '\n' << std::flush;
    if (!out_) {
      throw coupling::IoError("cannot append to " + path_ +
                              " (is the disk full?): the run stopped; its last "
                              "checkpoint is intact: free space and resume");
    }
  }

 private:
  std::string path_;
  std::ofstream out_;
};

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
  options.data_sha256 = task.data_sha256();
  options.training_precision = run.train.precision;
  options.resume_note = run.train.resume_overrides;
  if (!c.max_memory.empty()) options.max_memory_bytes = coupling::parse_memory_size(c.max_memory, "--max-memory");
  return result;
}

/// Where this rank trains: --device, where "cuda" and "auto" mean the GPU of the rank's LOCAL_RANK.
c10::Device training_device(const std::string& spec, const coupling::Communicator* communicator) {
  return coupling::resolve_rank_device(spec, communicator ? trainer::resolve_dist_env().local_rank : 0);
}

int64_t count_parameters(const torch::nn::Module& model) {
  int64_t n = 0;
  for (const auto& p : model.parameters()) n += p.numel();
  return n;
}

int64_t parameter_bytes(const torch::nn::Module& model) {
  int64_t bytes = 0;
  for (const auto& p : model.parameters()) bytes += static_cast<int64_t>(p.nbytes());
  return bytes;
}

std::string join_metrics(const std::vector<Metric>& metrics) {
  std::string text;
  for (const auto& [name, value] : metrics) text += fmt::format("{}{} {:.4f}", text.empty() ? "" : " | ", name, value);
  return text;
}

}  // namespace

coupling::MeasurementOptions measurement_options(const CouplingConfig& c, const std::map<std::string, int64_t>& names) {
  auto options =
      coupling::MeasurementOptions::parse(c.k, c.tokens, c.context_pairs, c.spectrum, names, c.jacobian, c.depth_band);
  options.max_row_bytes = c.max_row_mib << 20;
  options.randomized.oversample = c.oversample;
  options.randomized.power_iterations = c.power_iterations;
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
                            const std::set<std::string>& explicit_flags, bool allow_override) {
  if (explicit_flags.count("out") > 0 && requested.train.out != run_dir) {
    throw coupling::ConfigError("--out " + requested.train.out + " differs from --resume " + run_dir +
                                ": a resumed run continues in its own directory; drop --out");
  }
  const auto checkpoint = latest_checkpoint(run_dir);
  if (!checkpoint) {
    throw coupling::CheckpointError("--resume " + run_dir + ": no checkpoint under " + run_dir +
                                    "/checkpoints; start a new run with --out instead");
  }
  verify_checkpoint(*checkpoint);  // its config.toml is read only once the manifest vouches for it
  const auto config_file = (fs::path(*checkpoint) / "config.toml").string();
  RunConfig config = merge_for_resume(parse_config_text<RunConfig>(read_checkpoint_config(*checkpoint), config_file),
                                      requested, explicit_flags, allow_override);
  config.train.out = run_dir;
  return config;
}

template GptRunConfig config_for_resume(const std::string&, const GptRunConfig&, const std::set<std::string>&, bool);
template VitRunConfig config_for_resume(const std::string&, const VitRunConfig&, const std::set<std::string>&, bool);

void TrainingTask::to(c10::Device device) {
  device_ = device;
  model().to(device);
}

double TrainSummary::metric(const std::string& name) const {
  const auto found = metrics.find(name);
  if (found == metrics.end()) throw coupling::Error("the run's summary has no metric '" + name + "'");
  return found->second;
}

namespace {

/// One training session of a run: setup() validates everything, opens or creates the run's
/// files and restores a checkpoint; step() performs one update and what is due after it
/// (callbacks, progress, evaluation, checkpoint); finish() writes the summary.
class TrainingRun {
 public:
  TrainingRun(const RunDefinition& run, coupling::Communicator* communicator)
      : run_(run),
        train_(run.train),
        paths_(run.train.out),
        communicator_(communicator),
        rank_(communicator ? communicator->rank() : 0),
        world_size_(communicator ? communicator->world_size() : 1),
        writer_(rank_ == 0),  // rank 0 alone writes the run's files
        schedule_{train_.lr, train_.min_lr_fraction, train_.warmup, train_.steps} {}

  void setup(const TaskFactory& make_task, bool resume);
  bool done() const { return state_.step >= train_.steps; }
  void step();
  TrainSummary finish();

 private:
  void validate(const TaskFactory& make_task, bool resume);
  void take_back_directories();
  void restore_or_seed();
  void open_run_files();
  void save_checkpoint_now();
  void evaluate();
  double wall_seconds() const { return seconds_before_ + seconds_since(session_start_); }
  double measure_seconds() const { return coupling_callback_ ? coupling_callback_->measure_seconds() : 0.0; }

  const RunDefinition& run_;
  const TrainConfig& train_;
  const RunPaths paths_;
  coupling::Communicator* communicator_;
  const int64_t rank_, world_size_;
  const bool writer_;
  const LrSchedule schedule_;

  std::optional<RunLock> lock_;  ///< rank 0's, for the run's life
  /// The directories rank 0 created for --out and --log, deepest first: taken back when the run
  /// is refused before it writes a file.
  std::vector<std::string> created_;
  std::unique_ptr<TrainingTask> task_;
  Instrumentation instrumentation_;
  std::optional<std::string> resume_from_;
  c10::Device device_{c10::kCPU};
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<at::Tensor> parameters_;
  std::optional<trainer::GradientAverager> averager_;
  coupling::CallbackList callbacks_;
  std::shared_ptr<coupling::CouplingCallback> coupling_callback_;
  std::optional<CsvLog> train_log_, eval_log_;
  TrainerState state_;
  int64_t parameter_count_ = 0, items_per_step_ = 0, first_step_ = 0;
  Clock::time_point session_start_;
  double seconds_before_ = 0.0;          ///< wall time of earlier sessions (resume)
  double measure_seconds_before_ = 0.0;  ///< measurement time of earlier sessions
  double loss_reduce_seconds_ = 0.0;
  std::vector<Metric> held_out_;  ///< the latest evaluation
};

/// Everything that can fail on bad input is checked before the first file is written, and no
/// rank goes on unless every rank passed.
void TrainingRun::validate(const TaskFactory& make_task, bool resume) {
  std::exception_ptr failure;
  if (writer_) created_ = missing_directories(train_.out);
  try {
    device_ = training_device(train_.device, communicator_);
    trainer::AutocastScope::validate(train_.precision, device_);
    if (train_.batch % world_size_ != 0) {
      throw coupling::ConfigError(fmt::format("--batch {} is the global batch and must be a multiple of the {} ranks",
                                              train_.batch, world_size_));
    }
    if (writer_) {  // before anything in the directory is read: one run at a time
      ensure_writable_directory(train_.out);
      lock_.emplace(RunLock::acquire(train_.out));
    }
    at::manual_seed(static_cast<uint64_t>(train_.seed));  // the same initial model on every rank
    task_ = make_task();
    instrumentation_ = prepare_instrumentation(run_, *task_, paths_);
    resume_from_ = latest_checkpoint(train_.out);
    if (resume && !resume_from_) {
      throw coupling::CheckpointError("--resume " + train_.out + ": no checkpoint under " + train_.out +
                                      "/checkpoints; start a new run with --out instead");
    }
    if (!resume && resume_from_) {
      throw coupling::ConfigError("--out " + train_.out + " already holds a run (" + *resume_from_ +
                                  "): continue it with --resume " + train_.out + ", or choose a new --out");
    }
    if (writer_) {
      if (run_.coupling.enabled() && !resume && fs::exists(instrumentation_.options.log_path)) {
        throw coupling::ConfigError("coupling log " + instrumentation_.options.log_path +
                                    " already exists: resume its run with --resume, or choose another --log");
      }
      if (run_.coupling.enabled()) {
        const auto log_dir = fs::absolute(instrumentation_.options.log_path).parent_path().string();
        const auto missing = missing_directories(log_dir);
        created_.insert(created_.begin(), missing.begin(), missing.end());
        ensure_writable_directory(log_dir, "--log");
      }
    }
  } catch (const std::exception&) {
    failure = std::current_exception();
  }
  try {
    trainer::rethrow_if_any_rank_failed(failure, "the run's setup", communicator_);
  } catch (...) {
    take_back_directories();
    throw;
  }
}

/// A new run refused before its first file leaves nothing behind: its lock, and the directories
/// it created (those that are still empty).
void TrainingRun::take_back_directories() {
  if (created_.empty()) return;
  lock_.reset();
  std::error_code ec;
  if (std::find(created_.begin(), created_.end(), fs::absolute(train_.out).lexically_normal().string()) !=
      created_.end()) {
    fs::remove(fs::path(train_.out) / RunLock::kFileName, ec);
  }
  remove_empty_directories(created_);
  created_.clear();
}

/// The checkpoint's model, optimizer, sampler and generators, or a fresh model's rank seeds.
void TrainingRun::restore_or_seed() {
  if (resume_from_) {
    state_ = load_checkpoint(*resume_from_, task_->model(), *optimizer_, rank_, world_size_);
    if (state_.data_sha256 != task_->data_sha256()) {
      throw coupling::ConfigError("--data " + train_.data + " is not the data this run was trained on (SHA-256 " +
                                  task_->data_sha256().substr(0, 16) + "..., the checkpoint's " +
                                  state_.data_sha256.substr(0, 16) +
                                  "...): resume with the original data, or start a new run in another --out");
    }
    task_->restore_sampler_state(state_.sampler_rng, state_.step);
    if (device_.is_cuda()) {
      // Checkpoints hold the CPU generator only: a CUDA run's dropout generator restarts from
      // (seed, rank, step), so the ranks keep drawing masks of their own.
      auto generator = at::globalContext().defaultGenerator(device_);
      std::lock_guard<std::mutex> lock(generator.mutex());
      generator.set_current_seed(static_cast<uint64_t>(train_.seed) + 1000003ULL * static_cast<uint64_t>(rank_) +
                                 static_cast<uint64_t>(state_.step));
    }
  } else if (rank_ > 0) {
    at::manual_seed(static_cast<uint64_t>(train_.seed) + static_cast<uint64_t>(rank_));  // own dropout masks
  }
}

void TrainingRun::open_run_files() {
  if (!writer_) return;
  if (resume_from_) {
    // train_log rows are keyed by the update's 0-based index, eval_log rows by updates completed.
    truncate_csv_log(paths_.train_log, state_.step);
    truncate_csv_log(paths_.eval_log, state_.step + 1);
  } else {
    for (const auto& stale : {paths_.train_log, paths_.eval_log}) fs::remove(stale);
  }
  fs::remove(paths_.summary);  // rewritten at the end; a stale one would describe another run
  write_file_atomic(paths_.config, run_.config_toml);
  train_log_.emplace(paths_.train_log, "step,loss,lr,grad_norm," + task_->unit() + "_seen,train_seconds");
}

void TrainingRun::save_checkpoint_now() {
  state_.callback_state.clear();
  callbacks_.on_checkpoint_save(state_.step, state_.callback_state);
  state_.sampler_rng = task_->sampler_state();
  state_.data_sha256 = task_->data_sha256();
  state_.torch_rng = every_rank_generator_state(communicator_);
  state_.train_seconds = wall_seconds();
  if (writer_) {
    save_checkpoint(train_.out, state_, task_->model(), *optimizer_, run_.config_toml);
    spdlog::info("checkpoint: {}", checkpoint_dir(train_.out, state_.step));
  }
}

void TrainingRun::setup(const TaskFactory& make_task, bool resume) {
  if (communicator_) trainer::check_same_config(run_.config_fields, *communicator_);
  validate(make_task, resume);
  torch::nn::Module& model = task_->model();
  coupling::CouplingCallbackOptions& coupling_options = instrumentation_.options;
  coupling_options.communicator = communicator_;
  setup_compute(train_.threads);
  task_->to(device_);
  if (instrumentation_.probes.defined()) instrumentation_.probes = instrumentation_.probes.to(device_);
  optimizer_ = make_optimizer(model, train_);
  restore_or_seed();
  parameters_ = model.parameters();
  if (communicator_) {
    auto values = trainer::detached(parameters_);
    communicator_->broadcast(values, 0, "rank 0's parameters");
    averager_.emplace(parameters_, *communicator_);
  }
  parameter_count_ = count_parameters(model);
  items_per_step_ = task_->items_per_step(train_.batch);
  // For the memory check: AdamW's gradients and two moments beside each parameter, and this
  // rank's share of the batch's activations.
  coupling_options.training_bytes =
      3 * parameter_bytes(model) + task_->training_activation_bytes(train_.batch / world_size_);
  coupling_options.ranks_on_host = communicator_ ? trainer::resolve_dist_env().local_world_size : 1;
  spdlog::info("libcoupling {} | {}, {:.2f}M parameters | LibTorch {} on {}, {}", coupling::version(),
               task_->describe(), parameter_count_ / 1e6, coupling::torch_version(), device_.str(), train_.precision);
  if (communicator_) {
    spdlog::info("data-parallel: {} ranks ({}), {} sequences per rank per step, gradients in {} bucket(s)", world_size_,
                 communicator_->backend(), train_.batch / world_size_, averager_->buckets());
  }

  // Instrumentation through the same public API a user's loop would use. Its setup runs before
  // any run file is touched, so a log that cannot be resumed leaves the run directory as it was.
  if (run_.coupling.enabled()) {
    coupling_callback_ =
        std::make_shared<coupling::CouplingCallback>(task_->adapter(), instrumentation_.probes, coupling_options);
    callbacks_.add(coupling_callback_);
  }
  if (writer_ && !train_.tensorboard.empty()) {
    callbacks_.add(std::make_shared<coupling::TensorBoardCallback>(train_.tensorboard));
  }
  if (resume_from_) {
    callbacks_.on_checkpoint_load(
        state_.step, state_.format == 2 ? callbacks_.keyed_by_name(state_.callback_state) : state_.callback_state);
  }
  seconds_before_ = state_.train_seconds;
  measure_seconds_before_ = measure_seconds();
  const coupling::TrainBegin begin{state_.step, train_.steps, resume_from_.has_value(), seconds_before_};
  std::exception_ptr setup_failure;  // e.g. rank 0 cannot resume the log
  try {
    callbacks_.on_setup(begin);
  } catch (const std::exception&) {
    setup_failure = std::current_exception();
  }
  try {
    trainer::rethrow_if_any_rank_failed(setup_failure, "the start of the instrumentation", communicator_);
  } catch (...) {
    take_back_directories();
    throw;
  }
  created_.clear();  // from here on the run writes files: its directories stay
  open_run_files();
  if (resume_from_) spdlog::info("resumed from {} at step {}", *resume_from_, state_.step);
  if (!train_.resume_overrides.empty()) {
    spdlog::warn("resumed with changed optimisation from step {}: {} (recorded in config.toml and the coupling log)",
                 state_.step, train_.resume_overrides);
  }

  // The wall clock starts before anything is measured; a fresh run saves its step-0 checkpoint
  // first, so every measurement (the step-0 baseline included) can be recomputed from weights.
  session_start_ = Clock::now();
  first_step_ = state_.step;
  if (!resume_from_) save_checkpoint_now();
  callbacks_.on_train_begin({state_.step, train_.steps, resume_from_.has_value(), wall_seconds()});
  task_->model().train();
}

void TrainingRun::step() {
  const int64_t step = state_.step;
  const double lr = schedule_.at(step);
  set_learning_rate(*optimizer_, lr);
  optimizer_->zero_grad();
  at::Tensor loss;
  {
    trainer::AutocastScope autocast(train_.precision, device_);  // the forward only, as in PyTorch
    loss = task_->training_loss(train_.batch, rank_, world_size_);
  }
  double loss_value = loss.item<double>();
  if (communicator_) {  // the global batch's loss, so every rank sees (and stops on) the same value
    const auto reduce_start = Clock::now();
    loss_value =
        trainer::sum_over_ranks({loss_value}, communicator_, "the training loss")[0] / static_cast<double>(world_size_);
    loss_reduce_seconds_ += seconds_since(reduce_start);
  }
  if (!std::isfinite(loss_value)) {
    throw trainer::DivergenceError(fmt::format(
        "training loss is {} at step {}: the run stopped without saving; resume from the last checkpoint with "
        "a lower --lr or a longer --warmup: --resume {} --override --lr ... (the change is logged)",
        loss_value, step, train_.out));
  }
  loss.backward();
  if (averager_) averager_->average();
  // With clipping off, an infinite bound makes clip_grad_norm_ just measure the norm.
  const double grad_norm = torch::nn::utils::clip_grad_norm_(
      parameters_, train_.grad_clip > 0.0 ? train_.grad_clip : std::numeric_limits<double>::infinity());
  if (!std::isfinite(grad_norm)) {
    throw trainer::DivergenceError(fmt::format(
        "gradient norm is {} at step {}: the run stopped without saving; resume from the last checkpoint with a "
        "lower --lr: --resume {} --override --lr ... (the change is logged)",
        grad_norm, step, train_.out));
  }
  optimizer_->step();
  state_.step = step + 1;
  state_.tokens_seen += items_per_step_;
  state_.train_seconds = wall_seconds();
  if (train_log_) {
    train_log_->line(fmt::format("{},{:.6f},{:.6e},{:.6f},{},{:.3f}", step, loss_value, lr, grad_norm,
                                 state_.tokens_seen, state_.train_seconds));
  }

  const bool last = state_.step == train_.steps;
  const bool checkpoint_now = (train_.ckpt_every > 0 && state_.step % train_.ckpt_every == 0) || last;
  if (communicator_ && ((train_.check_every > 0 && state_.step % train_.check_every == 0) || checkpoint_now)) {
    trainer::check_ranks_agree(parameters_, *communicator_, state_.step);
  }
  callbacks_.on_step_end(coupling::StepEnd(state_.step, train_.steps)
                             .with_loss(loss_value)
                             .with_lr(lr)
                             .with_tokens_seen(state_.tokens_seen)
                             .with_wall_seconds(state_.train_seconds)
                             .with_checkpoint(checkpoint_now));
  if (state_.step % train_.log_every == 0 || last) {
    // The ETA counts training time only: measurements come at scheduled steps, not per update.
    const double training =
        std::max(seconds_since(session_start_) - (measure_seconds() - measure_seconds_before_), 1e-9);
    const double per_step = training / static_cast<double>(state_.step - first_step_);
    const double rate = static_cast<double>(items_per_step_) / per_step;
    spdlog::info("step {:>6}/{} | loss {:.4f} | lr {:.2e} | grad {:.3f} | {:.1f}k {}/s | ETA {} (training only)",
                 state_.step, train_.steps, loss_value, lr, grad_norm, rate / 1e3, task_->unit(),
                 coupling::format_duration(per_step * static_cast<double>(train_.steps - state_.step)));
  }
  if ((train_.eval_every > 0 && state_.step % train_.eval_every == 0) || last) evaluate();
  if (checkpoint_now) save_checkpoint_now();
}

void TrainingRun::evaluate() {
  held_out_ = task_->evaluate(communicator_);
  if (writer_) {
    if (!eval_log_) {
      std::string header = "step";
      for (const auto& metric : held_out_) header += "," + metric.first;
      eval_log_.emplace(paths_.eval_log, header + "," + task_->unit() + "_seen,train_seconds");
    }
    std::string row = std::to_string(state_.step);
    for (const auto& metric : held_out_) row += fmt::format(",{:.6f}", metric.second);
    eval_log_->line(fmt::format("{},{},{:.3f}", row, state_.tokens_seen, state_.train_seconds));
  }
  spdlog::info("eval step {}: {}", state_.step, join_metrics(held_out_));
  callbacks_.on_eval({state_.step, held_out_.front().second});
}

TrainSummary TrainingRun::finish() {
  state_.train_seconds = wall_seconds();
  callbacks_.on_train_end(coupling::StepEnd(state_.step, train_.steps)
                              .with_lr(schedule_.at(state_.step))
                              .with_tokens_seen(state_.tokens_seen)
                              .with_wall_seconds(state_.train_seconds));
  TrainSummary summary;
  summary.final_step = state_.step;
  if (coupling_callback_) {
    summary.measure_seconds = coupling_callback_->measure_seconds();
    summary.overhead_fraction = coupling_callback_->overhead_fraction(state_.train_seconds);
  }
  summary.parameters = parameter_count_;
  if (held_out_.empty()) held_out_ = task_->evaluate(communicator_);
  for (const auto& metric : held_out_) summary.metrics[metric.first] = metric.second;
  for (const auto& metric : task_->final_metrics(communicator_)) summary.metrics[metric.first] = metric.second;
  summary.wall_seconds = state_.train_seconds;
  const double session_seconds = seconds_since(session_start_);
  summary.items_per_second = session_seconds > 0.0
                                 ? static_cast<double>((state_.step - first_step_) * items_per_step_) / session_seconds
                                 : 0.0;
  summary.world_size = world_size_;
  summary.communication_seconds = (averager_ ? averager_->seconds() : 0.0) + loss_reduce_seconds_;
  if (writer_) {
    // In this order; a non-finite number (a diverged loss) is written as null, as JSON has no NaN.
    nlohmann::ordered_json json = {{"final_step", summary.final_step}};
    for (const auto& [name, value] : summary.metrics) json[name] = value;
    json[task_->unit() + "_per_second"] = summary.items_per_second;
    json["wall_seconds"] = summary.wall_seconds;
    json["parameters"] = summary.parameters;
    json["measure_seconds"] = summary.measure_seconds;
    json["overhead_fraction"] = summary.overhead_fraction;
    json["world_size"] = summary.world_size;
    json["communication_seconds"] = summary.communication_seconds;
    json["coupling_log"] = run_.coupling.enabled() ? instrumentation_.options.log_path : std::string("none");
    json["model"] = run_.model_kind;
    json["data"] = train_.data;
    json["libcoupling_version"] = coupling::version();
    write_file_atomic(paths_.summary, json.dump(2) + "\n");
  }
  std::vector<Metric> all_metrics(summary.metrics.begin(), summary.metrics.end());
  spdlog::info("summary: step {} | {} | {:.0f} {}/s | {} | peak RSS {:.0f} MiB", summary.final_step,
               join_metrics(all_metrics), summary.items_per_second, task_->unit(),
               coupling::format_duration(summary.wall_seconds), coupling::process_peak_memory_mib());
  if (communicator_) {
    spdlog::info("data-parallel: {:.1f} s of {:.1f} s training in gradient/loss all-reduces ({:.1f}%)",
                 summary.communication_seconds, session_seconds,
                 100.0 * summary.communication_seconds / std::max(session_seconds, 1e-9));
  }
  return summary;
}

}  // namespace

TrainSummary run_training(const RunDefinition& run, const TaskFactory& make_task, bool resume,
                          coupling::Communicator* communicator) {
  TrainingRun training(run, communicator);
  training.setup(make_task, resume);
  while (!training.done()) training.step();
  return training.finish();
}

}  // namespace trainer
