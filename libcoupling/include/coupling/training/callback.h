// Training-loop callbacks: the hooks a trainer calls, every one optional (override what you need).
//
// Call order in a loop (docs/callbacks.md):
//   on_setup(begin)                       once, before the trainer writes anything: open and
//                                         check files, no measurement
//   (a fresh run's trainer saves its step-0 checkpoint here)
//   on_train_begin(begin)                 once, with the wall clock running; begin.start_step > 0
//                                         when resuming (a callback that skipped on_setup does
//                                         its work here)
//   per update:  ... optimizer.step() ...; on_step_end(step)   step = updates completed
//                on_eval(eval)            when the trainer evaluated at this step
//                on_checkpoint_save(...)  when the trainer writes a checkpoint at this step
//   on_train_end(last)
//   on_measurement(m, step)               whenever a measuring callback (CouplingCallback) of the
//                                         same list has just measured (step 0 inside
//                                         on_train_begin, later ones inside on_step_end);
//                                         forward its values anywhere (TensorBoard, W&B, a logger)
// When resuming, the trainer calls on_checkpoint_load(state) before on_setup, with the
// strings the callback stored in on_checkpoint_save, so its schedule position survives.
#pragma once

#include "coupling/error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace coupling {

struct Measurement;  // coupling/engine/measurement.h

/// Key -> text a callback keeps inside the trainer's checkpoint.
using CallbackState = std::map<std::string, std::string>;

struct TrainBegin {
  int64_t start_step = 0;   ///< updates already done (0 for a fresh run)
  int64_t total_steps = 0;
  bool resumed = false;
  double wall_seconds = 0.0;  ///< run wall time so far (earlier sessions of a resumed run)
};

struct StepEnd {
  int64_t step = 0;          ///< updates completed, including this one
  int64_t total_steps = 0;
  double loss = 0.0;         ///< this update's batch loss
  double lr = 0.0;
  int64_t tokens_seen = 0;
  double wall_seconds = 0.0; ///< run wall time so far, measurements included (summed over resumed sessions)
  bool checkpoint = false;   ///< the trainer checkpoints at this step (after the callbacks)
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

/// Forwards every hook to each callback in order; state keys are prefixed with the index.
class CallbackList : public TrainingCallback {
 public:
  CallbackList() = default;
  CallbackList(const CallbackList&) = delete;  // its callbacks publish to this list
  CallbackList& operator=(const CallbackList&) = delete;
  ~CallbackList() override {
    for (auto& c : callbacks_) c->list_ = nullptr;  // a callback may outlive its list
  }

  /// Throws coupling::ConfigError for a callback that is already in a list.
  void add(std::shared_ptr<TrainingCallback> callback) {
    if (callback->list_) throw ConfigError("a training callback belongs to one CallbackList only");
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
    for (size_t i = 0; i < callbacks_.size(); ++i) {
      CallbackState own;
      callbacks_[i]->on_checkpoint_save(step, own);
      for (auto& [key, value] : own) state[std::to_string(i) + "." + key] = value;
    }
  }
  void on_checkpoint_load(int64_t step, const CallbackState& state) override {
    for (size_t i = 0; i < callbacks_.size(); ++i) {
      const std::string prefix = std::to_string(i) + ".";
      CallbackState own;
      for (const auto& [key, value] : state) {
        if (key.rfind(prefix, 0) == 0) own[key.substr(prefix.size())] = value;
      }
      callbacks_[i]->on_checkpoint_load(step, own);
    }
  }
  void on_train_end(const StepEnd& s) override {
    for (auto& c : callbacks_) c->on_train_end(s);
  }
  void on_measurement(const Measurement& m, int64_t step) override {
    for (auto& c : callbacks_) c->on_measurement(m, step);
  }

 private:
  std::vector<std::shared_ptr<TrainingCallback>> callbacks_;
};

}  // namespace coupling
