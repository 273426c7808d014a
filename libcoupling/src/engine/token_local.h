// Library-private: what the materialised token-local rows (jacobian.cpp) and the matrix-free
// products (jacobian_products.cpp) share: the checks of a Jacobian request, the size of a pass,
// and one evaluation of f^l at the output token on replicas of the input token.
#pragma once

#include "coupling/engine/model_adapter.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace coupling::token_local {

/// Throws coupling::ConfigError for a block out of range, tokens outside [0, tokens), or an input
/// token after the output token in a causal model (a causal zero).
void check_request(const ModelAdapter& adapter, int64_t block, int64_t tokens, int64_t output_token,
                   const std::vector<int64_t>& input_tokens);

/// Replicas of one token per pass under `max_bytes`: one token's activations plus its attention
/// row over `tokens` keys each (at least 1, at most d).
int64_t replicas_per_pass(int64_t tokens, int64_t d, int64_t max_bytes);

/// `rows` replicas of x's row `input_token` (requiring grad) and f^block of them at `output_token`
/// ([rows, d] each). Throws coupling::ConfigError when the adapter returns another shape.
std::pair<at::Tensor, at::Tensor> evaluate(ModelAdapter& adapter, int64_t block, const at::Tensor& x,
                                           int64_t input_token, int64_t output_token, int64_t rows);

}  // namespace coupling::token_local
