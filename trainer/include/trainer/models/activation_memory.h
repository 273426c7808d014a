// The activations a training step of a bundled transformer keeps for its backward pass, for the
// memory check before a run starts (coupling/engine/memory_estimate.h). Korthikanti et al.
// (2022, "Reducing activation recomputation in large transformer models") count
// s b h (34 + 5 a s / h) bytes a layer in 16-bit; the trainers keep float32, so twice that.
#pragma once

#include <cstdint>

namespace trainer {

/// Bytes for `sequences` sequences of `tokens` tokens through `layers` layers of width `d` with
/// `heads` heads, plus the embedding's output and `outputs` logits a sequence (their softmax and
/// its gradient beside them).
int64_t transformer_activation_bytes(int64_t sequences, int64_t tokens, int64_t layers, int64_t d, int64_t heads,
                                     int64_t outputs);

}  // namespace trainer
