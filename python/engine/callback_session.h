// coupling::CouplingCallback driven from Python (coupling.hf.CouplingCallback, coupling.Monitor):
// the C++ callback with its schedule, crash-safe HDF5 log and checkpoint state, and, in a
// torch.distributed job, a Communicator over the job's own process group. The Python side maps
// its loop's events onto these calls (callback.h states their order).
#pragma once

#include "coupling/dist/communicator.h"
#include "coupling/training/coupling_callback.h"

#include <ATen/core/Tensor.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace coupling::python {

class CallbackSession {
 public:
  /// `process_group`: a torch.distributed ProcessGroup shared by every rank (each rank makes its
  /// own session, with the same probes and options), or None for one process.
  CallbackSession(std::shared_ptr<ModelAdapter> adapter, at::Tensor probes, CouplingCallbackOptions options,
                  const pybind11::object& process_group);
  ~CallbackSession();
  /// Whether `process_group` is a c10d ProcessGroup this module can take (pybind11 shares the type
  /// with torch only when both were built alike).
  static bool takes_process_group(const pybind11::object& process_group);

  void load_state(int64_t step, const std::map<std::string, std::string>& state);
  std::map<std::string, std::string> save_state(int64_t step);
  void setup(const TrainBegin& begin);
  /// Measures step 0 of a fresh run: the measurement as measurement_dict, or None.
  pybind11::object train_begin(const TrainBegin& begin);
  /// The measurement taken at this step as measurement_dict, or None.
  pybind11::object step_end(const StepEnd& step);
  void record_training(const TrainingRecord& record);
  void eval(int64_t step, double val_loss);
  double measure_seconds() const { return callback().measure_seconds(); }
  double overhead_fraction(double wall_seconds) const { return callback().overhead_fraction(wall_seconds); }
  /// Closes the log; the session takes no further call.
  void close();

 private:
  CouplingCallback& callback() const;
  /// measurement_dict of the latest measurement when there is one newer than `seconds_before`.
  pybind11::object measured_since(double seconds_before) const;

  std::optional<Communicator> communicator_;  ///< outlives callback_
  std::unique_ptr<CouplingCallback> callback_;
};

}  // namespace coupling::python
