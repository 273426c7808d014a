#include "coupling/training/coupling_callback.h"

#include "coupling/dist/outcome.h"
#include "coupling/engine/fields.h"
#include "coupling/engine/memory_estimate.h"
#include "coupling/error.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>

namespace coupling {

CouplingCallback::CouplingCallback(std::shared_ptr<ModelAdapter> adapter, at::Tensor probe_inputs,
                                   CouplingCallbackOptions options)
    : adapter_(std::move(adapter)), probes_(std::move(probe_inputs)), options_(std::move(options)) {
  if (!probes_.defined() || probes_.numel() == 0 || probes_.size(0) == 0) {
    throw ConfigError("the coupling callback needs at least one probe input");
  }
}

double CouplingCallback::overhead_fraction(double wall_seconds) const {
  const double training = wall_seconds - measure_seconds_;
  return training > 0.0 ? measure_seconds_ / training : 0.0;
}

LogMetadata CouplingCallback::log_metadata() const {
  LogMetadata metadata;
  metadata.model = options_.model;
  metadata.model_config = options_.model_config;
  metadata.engine_config = options_.measurement.str();
  metadata.seed = options_.seed;
  metadata.world_size = options_.communicator ? options_.communicator->world_size() : 1;
  metadata.probes = probes_;
  metadata.training_precision = options_.training_precision;
  metadata.resume_note = options_.resume_note;
  metadata.data_sha256 = options_.data_sha256;
  return metadata;
}

void CouplingCallback::on_setup(const TrainBegin& begin) {
  set_up_ = true;
  layout_ = resolve_layout(*adapter_, probes_, options_.measurement);  // every rank: the same verdict
  memory_ =
      estimate_measurement_memory(*layout_, options_.measurement, {adapter_->tensor_bytes(), options_.training_bytes},
                                  probes_.device(), adapter_->supports_token_local());
  check_memory(*memory_, probes_.device(), options_.ranks_on_host, options_.max_memory_bytes, kMeasurementMemoryAdvice);
  if (writes_log()) {
    // A run resumed from its step-0 checkpoint may have been stopped before its log existed.
    if (begin.resumed && (begin.start_step > 0 || std::filesystem::exists(options_.log_path))) {
      auto metadata = log_metadata();
      if (!metadata.resume_note.empty()) {
        metadata.resume_note = "step " + std::to_string(begin.start_step) + ": " + metadata.resume_note;
      }
      log_.emplace(CouplingLog::resume(options_.log_path, metadata, begin.start_step, *layout_));
      spdlog::info("coupling: resumed log {} at step {} ({} measurements kept)", options_.log_path, begin.start_step,
                   log_->measured_steps().size());
    } else if (std::filesystem::exists(options_.log_path)) {
      throw IoError("log " + options_.log_path +
                    " already exists: resume its run, or choose another log path "
                    "(it is never overwritten)");
    }
  }
  if (state_missing_at_) {
    throw CheckpointError("the checkpoint at step " + std::to_string(*state_missing_at_) +
                          " lacks the coupling callback's state: it was written without the coupling log or by an "
                          "older libcoupling: start a new run");
  }
}

void CouplingCallback::on_train_begin(const TrainBegin& begin) {
  if (!set_up_) on_setup(begin);
  std::exception_ptr failure;   // rank 0's alone, but every rank learns of it before the first measurement
  if (writes_log() && !log_) {  // created only now, after the trainer's step-0 checkpoint
    try {
      log_.emplace(CouplingLog::create(options_.log_path, log_metadata(), *layout_));
      spdlog::info(
          "coupling: log {} | schedule '{}' + step 0 + final | {} | {} probes x {} tokens, {:.1f} MiB a row | peak "
          "memory estimate {}",
          options_.log_path, options_.schedule.str(), options_.measurement.str(), layout_->probes,
          layout_->tokens.size(), static_cast<double>(logged_bytes(*layout_)) / (1 << 20), memory_->str());
    } catch (...) {
      failure = std::current_exception();
    }
  }
  rethrow_if_any_rank_failed(failure, "the creation of the coupling log", options_.communicator);
  if (begin.start_step == 0) measure_now(0, 0, 0, begin.wall_seconds);
}

void CouplingCallback::measure_now(int64_t step, int64_t scheduled_step, int64_t tokens_seen, double wall_seconds) {
  const auto start = std::chrono::steady_clock::now();
  Measurement m = options_.communicator ? measure(*adapter_, probes_, options_.measurement, *options_.communicator)
                                        : measure(*adapter_, probes_, options_.measurement);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double training = wall_seconds - measure_seconds_;
  MeasurementRecord record{step,         scheduled_step, tokens_seen,
                           wall_seconds, seconds,        training - training_at_last_measurement_};
  if (log_) log_->append(record, m);
  measure_seconds_ += seconds;
  last_measure_seconds_ = seconds;
  training_at_last_measurement_ = training;
  pending_since_ = -1;
  if (writes_log()) {
    spdlog::info("coupling step {}: {}, {:.1f} s{}", step, headline(m), seconds,
                 scheduled_step < step ? " (deferred from step " + std::to_string(scheduled_step) + ")" : "");
  }
  if (writes_log() && !at::isfinite(m.depth_coupling).all().item<bool>()) {
    spdlog::warn("coupling step {}: non-finite values in the measurement (recorded as NaN, flagged in the log)", step);
  }
  if (!first_) first_ = m;
  latest_ = std::move(m);
  publish(*latest_, step);  // after latest_: a listener may read latest()
}

bool CouplingCallback::defer(const StepEnd& s) {
  const double training = s.wall_seconds - measure_seconds_;
  const bool over_budget = measure_seconds_ + last_measure_seconds_ > options_.max_overhead * training;
  if (!options_.communicator) return over_budget;
  std::vector<at::Tensor> decision{at::full({1}, over_budget ? 1.0 : 0.0)};
  options_.communicator->broadcast(decision, 0, "rank 0's measurement deferral decision");
  return decision[0].item<double>() != 0.0;
}

void CouplingCallback::record_training(const TrainingRecord& record) {
  if (log_) log_->append_training(record);
}

void CouplingCallback::on_step_end(const StepEnd& s) {
  if (s.training_row) record_training({s.step - 1, s.loss, s.lr, s.tokens_seen, s.wall_seconds});
  if (options_.schedule.due(s.step, s.total_steps, s.checkpoint) && pending_since_ < 0) pending_since_ = s.step;
  if (pending_since_ < 0) return;
  const bool must = s.step == s.total_steps;
  if (!must && options_.max_overhead > 0.0 && defer(s)) return;
  measure_now(s.step, pending_since_, s.tokens_seen, s.wall_seconds);
}

void CouplingCallback::on_eval(const EvalResult& eval) {
  if (log_) log_->append_eval({eval.step, eval.val_loss});
}

void CouplingCallback::on_checkpoint_save(int64_t, CallbackState& state) {
  state["measure_seconds"] = fmt::format("{:.17g}", measure_seconds_);  // round-trips exactly
  state["last_measure_seconds"] = fmt::format("{:.17g}", last_measure_seconds_);
  state["training_at_last_measurement"] = fmt::format("{:.17g}", training_at_last_measurement_);
  state["pending_since"] = std::to_string(pending_since_);
}

void CouplingCallback::on_checkpoint_load(int64_t step, const CallbackState& state) {
  try {
    measure_seconds_ = std::stod(state.at("measure_seconds"));
    last_measure_seconds_ = std::stod(state.at("last_measure_seconds"));
    training_at_last_measurement_ = std::stod(state.at("training_at_last_measurement"));
    pending_since_ = std::stoll(state.at("pending_since"));
  } catch (const std::exception&) {
    state_missing_at_ = step;  // refused in on_setup, after the log has had its say (its schema version)
  }
}

}  // namespace coupling
