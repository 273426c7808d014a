// The training loop's own failure: a non-finite loss or gradient, or data-parallel ranks whose
// parameters drifted apart. The run stops without saving the diverged state.
#pragma once

#include "coupling/error.h"

namespace trainer {

/// Training produced a non-finite value, or the ranks no longer hold one model.
class DivergenceError : public coupling::Error {
 public:
  using coupling::Error::Error;
};

}  // namespace trainer
