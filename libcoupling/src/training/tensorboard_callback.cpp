#include "coupling/training/tensorboard_callback.h"

#include "coupling/engine/fields.h"
#include "coupling/engine/measurement.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <cmath>

#include <unistd.h>

#include <filesystem>
#include <utility>

namespace fs = std::filesystem;

namespace coupling {

TensorBoardCallback::TensorBoardCallback(std::string directory) : directory_(std::move(directory)) {}

void TensorBoardCallback::on_setup(const TrainBegin& begin) {
  set_up_ = true;
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec || !fs::is_directory(directory_) || ::access(directory_.c_str(), W_OK) != 0) {
    throw LogError("cannot write TensorBoard files in " + directory_ + ": " +
                       (ec ? ec.message() : "not a writable directory") + "; give another directory",
                   "TensorBoardCallback::directory");
  }
  if (begin.resumed) {
    restart_step_ = begin.start_step + 1;
    return;
  }
  for (const auto& entry : fs::directory_iterator(directory_)) {
    if (entry.path().filename().string().find("tfevents") != std::string::npos) {
      throw LogError("TensorBoard directory " + directory_ + " already holds event files of another run (" +
                     entry.path().filename().string() + "): give a new directory, or delete them");
    }
  }
}

void TensorBoardCallback::on_train_begin(const TrainBegin& begin) {
  if (!set_up_) on_setup(begin);
}

TensorBoardWriter& TensorBoardCallback::writer() {
  // A loop that skips on_setup may publish the step-0 measurement before on_train_begin reaches
  // this callback: a fresh run then.
  if (!set_up_) on_setup(TrainBegin{});
  if (!writer_) {
    writer_.emplace(directory_);
    if (restart_step_ >= 0) writer_->restart_at(restart_step_);
  }
  return *writer_;
}

void TensorBoardCallback::on_step_end(const StepEnd& s) {
  writer().add_scalar("train/loss", s.step, s.loss);
  writer().add_scalar("train/lr", s.step, s.lr);
  writer().flush();
}

void TensorBoardCallback::on_eval(const EvalResult& eval) {
  writer().add_scalar("eval/val_loss", eval.step, eval.val_loss);
  writer().flush();
}

void TensorBoardCallback::on_measurement(const Measurement& m, int64_t step) {
  const auto& orientations = measurement_axis("orientation").labels;
  const auto& normalisations = measurement_axis("normalisation").labels;
  using Summary = std::pair<std::string, const at::Tensor*>;
  for (const auto& [name, field] :
       {Summary{"offdiag", &m.depth_mean_offdiag}, Summary{"adjacent", &m.depth_mean_adjacent},
        Summary{"offdiag_null", &m.depth_mean_offdiag_null}, Summary{"adjacent_null", &m.depth_mean_adjacent_null}}) {
    if (!field->defined()) continue;
    const auto means = field->mean(at::IntArrayRef{0, 1});  // [orientation, normalisation, K]
    for (size_t o = 0; o < orientations.size(); ++o) {
      for (size_t n = 0; n < normalisations.size(); ++n) {
        for (size_t k = 0; k < m.k_grid.size(); ++k) {
          writer().add_scalar(
              fmt::format("coupling/{}_K{}_{}_{}", name, m.k_grid[k], orientations[o], normalisations[n]), step,
              means[static_cast<int64_t>(o)][static_cast<int64_t>(n)][static_cast<int64_t>(k)].item<double>());
        }
      }
    }
  }
  writer().add_scalar("trajectory/line_shape_score", step, m.line_shape_score.mean().item<double>());
  writer().add_scalar("trajectory/norm_growth_rate", step, m.norm_growth_rate.mean().item<double>());
  for (int64_t l = 0; l < m.layer_linearity.size(0); ++l) {  // NaN below d + 1 probe tokens: not written
    const double value = m.layer_linearity[l].item<double>();
    if (std::isfinite(value)) writer().add_scalar(fmt::format("linearity/block_{}", l + 1), step, value);
  }
  writer().add_scalar("measurement/seconds", step, m.timings.total);
  writer().flush();
}

void TensorBoardCallback::on_train_end(const StepEnd&) {
  if (writer_) writer_->flush();
}

}  // namespace coupling
