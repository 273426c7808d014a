// The shape of the bundled GPT, kept free of LibTorch headers so that configuration and CLI code
// compiles fast. The model itself is in trainer/models/gpt.h.
#pragma once

#include <cstdint>

namespace trainer {

/// Shape of a GPT. Defaults give the small model the bundled trainer uses.
struct GptConfig {
  int64_t vocab = 256;
  int64_t context = 128;
  int64_t d_model = 128;
  int64_t layers = 4;
  int64_t heads = 4;
  double dropout = 0.0;

  /// Throws coupling::ConfigError naming the offending field and the fix.
  void validate() const;
};

}  // namespace trainer
