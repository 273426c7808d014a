#include "coupling/coupling_callback.h"

#include "coupling/error.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <chrono>

namespace coupling {

CouplingCallback::CouplingCallback(std::shared_ptr<ModelAdapter> adapter, at::Tensor probe_inputs,
                                   CouplingCallbackOptions options)
    : adapter_(std::move(adapter)), probes_(std::move(probe_inputs)), options_(std::move(options)) {
  if (!probes_.defined() || probes_.numel() == 0 || probes_.size(0) == 0) {
    throw ConfigError("the coupling callback needs at least one probe input");
  }
}

double CouplingCallback::overhead_fraction(double train_wall_seconds) const {
  const double training = train_wall_seconds - measure_seconds_;
  return training > 0.0 ? measure_seconds_ / training : 0.0;
}

void CouplingCallback::on_train_begin(const TrainBegin& begin) {
  if (!writes_log()) {
    if (!begin.resumed) measure_now(0, 0, 0, 0.0);
    return;
  }
  const int64_t world_size = options_.communicator ? options_.communicator->world_size() : 1;
  const LogMetadata metadata{options_.model, options_.model_config, describe(options_.measurement), options_.seed,
                             world_size, probes_, options_.training_precision};
  if (begin.resumed) {
    log_.emplace(CouplingLog::resume(options_.log_path, metadata, begin.start_step));
    spdlog::info("coupling: resumed log {} at step {} ({} measurements kept)", options_.log_path, begin.start_step,
                 log_->measured_steps().size());
    return;
  }
  log_.emplace(CouplingLog::create(options_.log_path, metadata));
  spdlog::info("coupling: log {} | schedule '{}' + step 0 + final | {}", options_.log_path, options_.schedule.str(),
               describe(options_.measurement));
  measure_now(0, 0, 0, 0.0);
}

void CouplingCallback::measure_now(int64_t step, int64_t scheduled_step, int64_t tokens_seen, double wall_seconds) {
  const auto start = std::chrono::steady_clock::now();
  Measurement m = options_.communicator ? measure(*adapter_, probes_, options_.measurement, *options_.communicator)
                                        : measure(*adapter_, probes_, options_.measurement);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MeasurementRecord record{step, scheduled_step, tokens_seen, wall_seconds, seconds,
                           wall_seconds - wall_at_last_measurement_};
  if (log_) log_->append(record, m);
  measure_seconds_ += seconds;
  last_measure_seconds_ = seconds;
  wall_at_last_measurement_ = wall_seconds;
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
}

bool CouplingCallback::defer(const StepEnd& s) {
  const double training = s.wall_seconds - measure_seconds_;
  const bool over_budget = measure_seconds_ + last_measure_seconds_ > options_.max_overhead * training;
  if (!options_.communicator) return over_budget;
  std::vector<at::Tensor> decision{at::full({1}, over_budget ? 1.0 : 0.0)};
  options_.communicator->broadcast(decision, 0, "rank 0's measurement deferral decision");
  return decision[0].item<double>() != 0.0;
}

void CouplingCallback::on_step_end(const StepEnd& s) {
  if (log_) log_->append_training({s.step - 1, s.loss, s.lr, s.tokens_seen, s.wall_seconds});
  if (options_.schedule.due(s.step, s.total_steps, s.checkpoint) && pending_since_ < 0) pending_since_ = s.step;
  if (pending_since_ < 0) return;
  const bool must = s.step == s.total_steps;
  if (!must && options_.max_overhead > 0.0 && defer(s)) return;
  measure_now(s.step, pending_since_, s.tokens_seen, s.wall_seconds);
}

void CouplingCallback::on_eval(const EvalResult& eval) {
  if (log_) log_->append_eval(eval.step, eval.val_loss);
}

void CouplingCallback::on_checkpoint_save(int64_t, CallbackState& state) {
  state["measure_seconds"] = std::to_string(measure_seconds_);
  state["last_measure_seconds"] = std::to_string(last_measure_seconds_);
  state["wall_at_last_measurement"] = std::to_string(wall_at_last_measurement_);
  state["pending_since"] = std::to_string(pending_since_);
}

void CouplingCallback::on_checkpoint_load(int64_t step, const CallbackState& state) {
  try {
    measure_seconds_ = std::stod(state.at("measure_seconds"));
    last_measure_seconds_ = std::stod(state.at("last_measure_seconds"));
    wall_at_last_measurement_ = std::stod(state.at("wall_at_last_measurement"));
    pending_since_ = std::stoll(state.at("pending_since"));
  } catch (const std::exception&) {
    throw CheckpointError("the checkpoint at step " + std::to_string(step) +
                          " has no coupling-callback state: it was written without the coupling log; "
                          "resume without it or start a new run");
  }
}

}  // namespace coupling
