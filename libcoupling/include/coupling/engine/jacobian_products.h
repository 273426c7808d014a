// Products with a block Jacobian J^l_{t1 t2} without forming it: the matrix-free path
// (docs/metrics.md section 2).
//
// Both products go through the adapter's token-local function (ModelAdapter::
// residual_branch_at_token), a chunk of vectors per pass, so that each pass is a few GEMMs:
//  - J^T Y (a VJP): one backward pass with the columns of Y as cotangents, the cost of as many
//    rows of a materialised J;
//  - J X (a JVP), from two reverse passes ("double VJP"): g(u) = J^T u is linear in u, and the
//    VJP of g with v is J v. It costs about two VJPs, and needs only the backward formulas that
//    LibTorch has for every op of a block, in both supported LibTorch versions, where forward
//    mode would need a tangent formula for each op and for custom autograd functions.
#pragma once

#include "coupling/engine/model_adapter.h"
#include "coupling/engine/spectrum.h"

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace coupling {

/// J^block_{input_token, output_token} of one sequence whose block input is `x` ([T, d]) as a
/// LinearOperator: multiply(X [d, r]) = J X, multiply_transpose(Y [d, r]) = J^T Y, on x's device,
/// float32. Each pass holds at most about `max_bytes` of activations (as JacobianOptions::
/// max_bytes). Throws coupling::ConfigError when the adapter has no token-local function, or for
/// tokens out of range or a causal zero (input after output).
LinearOperator jacobian_operator(ModelAdapter& adapter, int64_t block, const at::Tensor& x, int64_t input_token,
                                 int64_t output_token, int64_t max_bytes = int64_t{1} << 30);

}  // namespace coupling
