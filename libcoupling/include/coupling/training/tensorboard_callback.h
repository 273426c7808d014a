// TensorBoardCallback: a run's curves in TensorBoard, from C++ (TensorBoardWriter, no Python).
// Add it to the same CallbackList as a CouplingCallback and it streams, as scalars:
//   train/loss, train/lr                 every update
//   eval/val_loss                        every evaluation
//   coupling/offdiag_K<K>_<orientation>_<normalisation>, coupling/adjacent_K<K>_...
//                                        every measurement: depth m_K, mean off-diagonal and
//                                        |i - j| = 1, averaged over probes and tokens
//   trajectory/line_shape_score, trajectory/norm_growth_rate, measurement/seconds
//
//   callbacks.add(std::make_shared<coupling::TensorBoardCallback>("runs/x/tensorboard"));
//   then: tensorboard --logdir runs/x/tensorboard
//
// Records are flushed after every hook, so a crash loses nothing TensorBoard could have shown. A
// resumed run writes a new event file in the same directory; steps it repeats after the last
// checkpoint appear twice. Data-parallel: give it to rank 0 only.
#pragma once

#include "coupling/log/tensorboard_events.h"
#include "coupling/training/callback.h"

#include <optional>
#include <string>

namespace coupling {

class TensorBoardCallback : public TrainingCallback {
 public:
  /// The event file (and the directory, if needed) is created at the first scalar, after the
  /// loop's setup: a run refused in setup leaves no file. The hook that creates it throws
  /// coupling::LogError when it cannot.
  explicit TensorBoardCallback(std::string directory);

  void on_step_end(const StepEnd& step) override;
  void on_eval(const EvalResult& eval) override;
  void on_measurement(const Measurement& measurement, int64_t step) override;
  void on_train_end(const StepEnd& last) override;

  /// The event file (empty before the first scalar).
  std::string path() const { return writer_ ? writer_->path() : ""; }

 private:
  TensorBoardWriter& writer();  ///< created at the first use

  std::string directory_;
  std::optional<TensorBoardWriter> writer_;
};

}  // namespace coupling
