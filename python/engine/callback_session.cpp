#include "callback_session.h"

#include "measurement_dict.h"

#include "coupling/error.h"

#include <torch/csrc/utils/pybind.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <utility>

namespace py = pybind11;

namespace coupling::python {

CallbackSession::CallbackSession(std::shared_ptr<ModelAdapter> adapter, at::Tensor probes,
                                 CouplingCallbackOptions options, const py::object& process_group) {
  if (!process_group.is_none()) {
    const auto group = py::cast<c10::intrusive_ptr<c10d::ProcessGroup>>(process_group);
    communicator_.emplace(Communicator::from_process_group(group, probes.device()));
    options.communicator = &*communicator_;
  }
  callback_ = std::make_unique<CouplingCallback>(std::move(adapter), std::move(probes), std::move(options));
}

bool CallbackSession::takes_process_group(const py::object& process_group) {
  try {
    return static_cast<bool>(py::cast<c10::intrusive_ptr<c10d::ProcessGroup>>(process_group));
  } catch (const py::cast_error&) {
    return false;
  }
}

CallbackSession::~CallbackSession() {
  py::gil_scoped_acquire gil;  // the adapter holds Python objects
  callback_.reset();
}

CouplingCallback& CallbackSession::callback() const {
  if (!callback_) throw ConfigError("this coupling callback is closed: make a new one");
  return *callback_;
}

py::object CallbackSession::measured_since(double seconds_before) const {
  if (callback().measure_seconds() == seconds_before || !callback().latest()) return py::none();
  return measurement_dict(*callback().latest());
}

void CallbackSession::load_state(int64_t step, const std::map<std::string, std::string>& state) {
  callback().on_checkpoint_load(step, state);
}

std::map<std::string, std::string> CallbackSession::save_state(int64_t step) {
  CallbackState state;
  callback().on_checkpoint_save(step, state);
  return state;
}

void CallbackSession::setup(const TrainBegin& begin) {
  py::gil_scoped_release released;
  callback().on_setup(begin);
}

py::object CallbackSession::train_begin(const TrainBegin& begin) {
  const double before = callback().measure_seconds();
  {
    py::gil_scoped_release released;
    callback().on_train_begin(begin);
  }
  return measured_since(before);
}

py::object CallbackSession::step_end(const StepEnd& step) {
  const double before = callback().measure_seconds();
  {
    py::gil_scoped_release released;
    callback().on_step_end(step);
  }
  return measured_since(before);
}

void CallbackSession::record_training(const TrainingRecord& record) { callback().record_training(record); }

void CallbackSession::eval(int64_t step, double val_loss) { callback().on_eval({step, val_loss}); }

void CallbackSession::close() {
  py::gil_scoped_acquire gil;
  callback_.reset();
  communicator_.reset();
}

}  // namespace coupling::python
