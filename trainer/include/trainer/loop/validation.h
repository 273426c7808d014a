// Checks shared by the bundled models' configuration structs (GptConfig, VitConfig).
#pragma once

#include "coupling/error.h"

#include <cstdint>
#include <string>

namespace trainer {

/// Throws coupling::ConfigError "<flag> must be positive (got <value>)" unless value > 0.
inline void require_positive(int64_t value, const char* flag) {
  if (value <= 0) {
    throw coupling::ConfigError(std::string(flag) + " must be positive (got " + std::to_string(value) + ")");
  }
}

/// Throws coupling::ConfigError unless d_model is a multiple of heads.
inline void require_heads_divide(int64_t d_model, int64_t heads) {
  if (d_model % heads != 0) {
    throw coupling::ConfigError("--d-model " + std::to_string(d_model) + " is not divisible by --heads " +
                                std::to_string(heads) + ": choose a d_model that is a multiple of heads");
  }
}

/// Throws coupling::ConfigError unless 0 <= dropout < 1.
inline void require_dropout(double dropout) {
  if (!(dropout >= 0.0 && dropout < 1.0)) {  // NaN fails both comparisons
    throw coupling::ConfigError("--dropout must be in [0, 1) (got " + std::to_string(dropout) + ")");
  }
}

}  // namespace trainer
