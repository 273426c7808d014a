// The checks of the bundled models' configurations, apart from the modules so that the run
// configuration (and its fuzz harness) needs no LibTorch.
#include "coupling/error.h"
#include "trainer/loop/validation.h"
#include "trainer/models/gpt_config.h"
#include "trainer/models/vit_config.h"

#include <string>

namespace trainer {

void GptConfig::validate() const {
  require_positive(vocab, "--vocab");
  require_positive(context, "--context");
  require_positive(d_model, "--d-model");
  require_positive(layers, "--layers");
  require_positive(heads, "--heads");
  require_heads_divide(d_model, heads);
  require_dropout(dropout);
}

void VitConfig::validate() const {
  require_positive(image_size, "image size");
  require_positive(channels, "channels");
  require_positive(patch, "--patch");
  require_positive(d_model, "--d-model");
  require_positive(layers, "--layers");
  require_positive(heads, "--heads");
  require_positive(classes, "classes");
  if (image_size % patch != 0) {
    throw coupling::ConfigError("--patch " + std::to_string(patch) + " does not divide the image size " +
                                std::to_string(image_size) + ": choose a divisor (28x28 images: 2, 4, 7, 14)");
  }
  require_heads_divide(d_model, heads);
  require_dropout(dropout);
}

}  // namespace trainer
