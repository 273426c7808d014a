// The shape of the bundled ViT, kept free of LibTorch headers (like gpt_config.h). The model
// itself is in trainer/models/vit.h.
#pragma once

#include <cstdint>

namespace trainer {

/// Shape of a ViT for square images. Defaults: the small Fashion-MNIST model of the bundled
/// trainer (7x7 patches of a 28x28 image: 16 patch tokens + CLS).
struct VitConfig {
  int64_t image_size = 28;
  int64_t channels = 1;
  int64_t patch = 7;
  int64_t d_model = 64;
  int64_t layers = 4;
  int64_t heads = 4;
  int64_t classes = 10;
  double dropout = 0.0;

  int64_t patches_per_side() const { return image_size / patch; }
  /// Tokens per image: the CLS token (index 0) and the patches in row-major order.
  int64_t tokens() const { return 1 + patches_per_side() * patches_per_side(); }
  /// The token of the patch at the image centre (row-major, CLS = 0).
  int64_t center_token() const { return 1 + (patches_per_side() / 2) * patches_per_side() + patches_per_side() / 2; }

  /// Throws coupling::ConfigError naming the offending field and the fix.
  void validate() const;
};

}  // namespace trainer
