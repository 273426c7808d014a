// TensorBoardCallback: a run's curves in TensorBoard, from C++ (TensorBoardWriter, no Python).
// Add it to the same CallbackList as a CouplingCallback and it streams, as scalars:
//   train/loss, train/lr                 every update
//   eval/val_loss                        every evaluation
//   coupling/offdiag_K<K>_<orientation>_<normalisation>, coupling/adjacent_K<K>_...
//                                        every measurement (on_measurement): depth m_K, mean
//                                        off-diagonal and |i - j| = 1, averaged over probes and
//                                        tokens
//   trajectory/line_shape_score, trajectory/norm_growth_rate, measurement/seconds
//
//   callbacks.add(std::make_shared<coupling::TensorBoardCallback>("runs/x/tensorboard"));
//   then: tensorboard --logdir runs/x/tensorboard
//
// One run per directory: a fresh run refuses a directory that already holds event files. A
// resumed run adds a file that starts with a restart at its first new step, so TensorBoard drops
// the steps the run repeats after its last checkpoint. Records are flushed after every hook: a
// crash loses nothing TensorBoard could have shown. A write error (a full disk) is a
// coupling::LogError from the hook, as for the HDF5 log. Data-parallel: give it to rank 0 only.
#pragma once

#include "coupling/log/tensorboard_events.h"
#include "coupling/training/callback.h"

#include <optional>
#include <string>

namespace coupling {

class TensorBoardCallback : public TrainingCallback {
 public:
  /// Nothing is touched before on_setup (or on_train_begin in a loop that skips on_setup).
  explicit TensorBoardCallback(std::string directory);

  /// Creates the directory and checks it (writable; no event files unless resuming): throws
  /// coupling::LogError naming it. The event file itself comes at the first scalar.
  std::string name() const override { return "tensorboard"; }
  void on_setup(const TrainBegin& begin) override;
  void on_train_begin(const TrainBegin& begin) override;
  void on_step_end(const StepEnd& step) override;
  void on_eval(const EvalResult& eval) override;
  void on_measurement(const Measurement& measurement, int64_t step) override;
  void on_train_end(const StepEnd& last) override;

  /// The event file (empty before the first scalar).
  std::string path() const { return writer_ ? writer_->path() : ""; }

 private:
  TensorBoardWriter& writer();  ///< created at the first use, with a resumed run's restart

  std::string directory_;
  bool set_up_ = false;
  int64_t restart_step_ = -1;  ///< a resumed run's first new step, or -1
  std::optional<TensorBoardWriter> writer_;
};

}  // namespace coupling
