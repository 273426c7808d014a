// The bundled ViT trainer: a Vision Transformer on MNIST-format images (default: Fashion-MNIST),
// trained by the shared loop (training_loop.h) with seeded per-epoch shuffling and optional
// augmentation (random crop with 2-pixel padding, horizontal flip). See docs/trainer.md.
#pragma once

#include "trainer/loop/run_config.h"
#include "trainer/loop/training_loop.h"

#include <memory>
#include <string>

namespace coupling {
class Communicator;
}

namespace trainer {

/// Trains a ViT as `config` says, in config.train.out (resume and data-parallel as train_gpt).
/// summary.metrics holds test_loss, test_accuracy (on the first --eval-windows test images),
/// train_loss and train_accuracy (on as many unaugmented training images).
TrainSummary train_vit(const VitRunConfig& config, bool resume, coupling::Communicator* communicator = nullptr);

/// The ViT, its images and metrics as the training loop (and coupling-analyze) see them.
/// Throws coupling::ConfigError or coupling::DataError on bad options or data.
std::unique_ptr<TrainingTask> make_vit_task(const VitRunConfig& config);

/// data/fashion-mnist in the working directory, else next to the source tree. Throws
/// coupling::DataError if absent.
std::string resolve_default_image_data();

}  // namespace trainer
