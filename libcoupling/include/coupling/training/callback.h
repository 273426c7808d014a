// Training-loop callbacks: the hooks a trainer calls, every one optional (override what you need).
// This is the one place that states their order (docs/callbacks.md refers here):
//
//   on_checkpoint_load(step, state)  resuming only, first: the strings the callback stored in
//                                    on_checkpoint_save, so its schedule position survives
//   on_setup(begin)                  once, before the trainer writes anything: check and reopen
//                                    files (CouplingCallback reopens a resumed run's log), no
//                                    measurement; a fresh run's trainer then saves its step-0
//                                    checkpoint
//   on_train_begin(begin)            once, with the wall clock running; begin.start_step > 0 when
//                                    resuming (CouplingCallback creates a fresh run's log here and
//                                    measures step 0; a callback that skipped on_setup does its
//                                    work here)
//   per update, after optimizer.step():
//     on_step_end(step)              step.step = updates completed
//     on_eval(eval)                  when the trainer evaluated at this step
//     on_checkpoint_save(step, state) when the trainer writes a checkpoint at this step
//   on_train_end(last)
//   on_measurement(m, step)          whenever a measuring callback of the same list has just
//                                    measured (step 0 inside on_train_begin, later ones inside
//                                    on_step_end): forward its values anywhere
#pragma once

#include "coupling/error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace coupling {

struct Measurement;  // coupling/engine/measurement.h

/// Key -> text a callback keeps inside the trainer's checkpoint.
using CallbackState = std::map<std::string, std::string>;

struct TrainBegin {
  int64_t start_step = 0;  ///< updates already done (0 for a fresh run)
  int64_t total_steps = 0;
  bool resumed = false;
  double wall_seconds = 0.0;  ///< run wall time so far (earlier sessions of a resumed run)
};

/// The end of an update, built with named setters so that no two numbers can be swapped:
///   callbacks.on_step_end(coupling::StepEnd(step, steps).with_loss(loss).with_lr(lr));
struct StepEnd {
  StepEnd(int64_t step_, int64_t total_steps_) : step(step_), total_steps(total_steps_) {}
  StepEnd& with_loss(double value) { return loss = value, *this; }
  StepEnd& with_lr(double value) { return lr = value, *this; }
  StepEnd& with_tokens_seen(int64_t value) { return tokens_seen = value, *this; }
  StepEnd& with_wall_seconds(double value) { return wall_seconds = value, *this; }
  StepEnd& with_checkpoint(bool value) { return checkpoint = value, *this; }
  /// Whether a callback that logs training scalars records this update's (loss, lr, ...): false
  /// when the loop reports them later on its own (CouplingCallback::record_training).
  StepEnd& with_training_row(bool value) { return training_row = value, *this; }

  int64_t step = 0;  ///< updates completed, including this one
  int64_t total_steps = 0;
  double loss = 0.0;  ///< this update's batch loss
  double lr = 0.0;
  int64_t tokens_seen = 0;
  double wall_seconds = 0.0;  ///< run wall time so far, measurements included (summed over resumed sessions)
  bool checkpoint = false;    ///< the trainer checkpoints at this step (after the callbacks)
  bool training_row = true;
};

struct EvalResult {
  int64_t step = 0;
  double val_loss = 0.0;
};

class TrainingCallback {
 public:
  TrainingCallback() = default;
  virtual ~TrainingCallback() = default;
  /// A copy belongs to no list.
  TrainingCallback(const TrainingCallback&) {}
  TrainingCallback& operator=(const TrainingCallback&) { return *this; }
  /// The key of this callback's checkpoint state: unique in its list, and required of a callback
  /// that saves state ("" = keeps none).
  virtual std::string name() const { return ""; }
  virtual void on_setup(const TrainBegin&) {}
  virtual void on_train_begin(const TrainBegin&) {}
  virtual void on_step_end(const StepEnd&) {}
  virtual void on_eval(const EvalResult&) {}
  /// Add what the callback needs to resume exactly; keys are private to this callback.
  virtual void on_checkpoint_save(int64_t /*step*/, CallbackState& /*state*/) {}
  virtual void on_checkpoint_load(int64_t /*step*/, const CallbackState& /*state*/) {}
  virtual void on_train_end(const StepEnd&) {}
  /// A measurement taken at `step` by a callback of the same CallbackList (every rank's list gets
  /// the whole measurement when data-parallel).
  virtual void on_measurement(const Measurement& /*measurement*/, int64_t /*step*/) {}

 protected:
  /// Hands a measurement to on_measurement of every callback in the list this one was added to,
  /// and of the lists around that one (nothing when it is in no list).
  void publish(const Measurement& measurement, int64_t step) {
    if (!list_) return;
    TrainingCallback* outermost = list_;
    while (outermost->list_) outermost = outermost->list_;
    outermost->on_measurement(measurement, step);
  }

 private:
  friend class CallbackList;
  TrainingCallback* list_ = nullptr;  ///< the CallbackList this callback was added to
};

/// Forwards every hook to each callback in order; state keys are prefixed with the callback's name.
/// A list inside another list needs a name of its own when its callbacks keep state.
class CallbackList : public TrainingCallback {
 public:
  explicit CallbackList(std::string name = {}) : name_(std::move(name)) {}
  std::string name() const override { return name_; }
  CallbackList(const CallbackList&) = delete;  // its callbacks publish to this list
  CallbackList& operator=(const CallbackList&) = delete;
  ~CallbackList() override {
    for (auto& c : callbacks_) c->list_ = nullptr;  // a callback may outlive its list
  }

  /// Throws coupling::ConfigError for a callback that is already in a list, or whose name another
  /// callback of the list has.
  void add(std::shared_ptr<TrainingCallback> callback) {
    if (callback->list_) throw ConfigError("a training callback belongs to one CallbackList only");
    const std::string name = callback->name();
    for (const auto& c : callbacks_) {
      if (!name.empty() && c->name() == name) {
        throw ConfigError("two training callbacks are named '" + name +
                          "' in one list: give each a name() of its own (it keys its checkpoint state)");
      }
    }
    callback->list_ = this;
    callbacks_.push_back(std::move(callback));
  }
  bool empty() const { return callbacks_.empty(); }

  void on_setup(const TrainBegin& b) override {
    for (auto& c : callbacks_) c->on_setup(b);
  }
  void on_train_begin(const TrainBegin& b) override {
    for (auto& c : callbacks_) c->on_train_begin(b);
  }
  void on_step_end(const StepEnd& s) override {
    for (auto& c : callbacks_) c->on_step_end(s);
  }
  void on_eval(const EvalResult& e) override {
    for (auto& c : callbacks_) c->on_eval(e);
  }
  void on_checkpoint_save(int64_t step, CallbackState& state) override {
    for (auto& c : callbacks_) {
      CallbackState own;
      c->on_checkpoint_save(step, own);
      if (own.empty()) continue;
      if (c->name().empty()) {
        throw ConfigError("a training callback without a name() saved checkpoint state: give it a name");
      }
      for (auto& [key, value] : own) state[c->name() + "." + key] = value;
    }
  }
  void on_checkpoint_load(int64_t step, const CallbackState& state) override {
    for (auto& c : callbacks_) {
      const std::string prefix = c->name() + ".";
      CallbackState own;
      for (const auto& [key, value] : state) {
        if (!c->name().empty() && key.rfind(prefix, 0) == 0) own[key.substr(prefix.size())] = value;
      }
      c->on_checkpoint_load(step, own);
    }
  }
  /// Callback state keyed by position ("0.key": checkpoint format 2) keyed by name instead. Keys
  /// of no callback of this list are dropped, as on_checkpoint_load ignores them.
  CallbackState keyed_by_name(const CallbackState& by_position) const {
    CallbackState by_name;
    for (const auto& [key, value] : by_position) {
      const auto dot = key.find('.');
      const std::string position = key.substr(0, dot);
      if (dot == std::string::npos || position.empty() ||
          position.find_first_not_of("0123456789") != std::string::npos || position.size() > 9) {
        continue;
      }
      const auto index = static_cast<size_t>(std::stoul(position));
      if (index < callbacks_.size() && !callbacks_[index]->name().empty()) {
        by_name[callbacks_[index]->name() + key.substr(dot)] = value;
      }
    }
    return by_name;
  }
  void on_train_end(const StepEnd& s) override {
    for (auto& c : callbacks_) c->on_train_end(s);
  }
  void on_measurement(const Measurement& m, int64_t step) override {
    for (auto& c : callbacks_) c->on_measurement(m, step);
  }

 private:
  std::string name_;
  std::vector<std::shared_ptr<TrainingCallback>> callbacks_;
};

}  // namespace coupling
