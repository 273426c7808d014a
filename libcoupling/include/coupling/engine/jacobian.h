// Block Jacobians J^l_{t1 t2} = d f^l(X)_{t2} / d x_{t1} (docs/metrics.md section 1), rows = output dims.
//
// Generic method, no knowledge of the block needed, in one of two strategies; each backward pass
// yields row r of J_{t1 t2} for EVERY input token t1 at once:
//  - row by row (the paper's algorithm): one forward pass of the sequence, then one backward
//    pass per output coordinate r of token t2;
//  - replicated: the sequence is replicated along the batch dimension, replica r gets the one-hot
//    cotangent e_r at t2, and one forward and one backward pass serve a chunk of rows sized to a
//    memory budget. It pays a forward pass per row, but no fixed per-pass cost per row, so it
//    wins only on small blocks; kAuto picks by shape (generic_strategy, measured in coupling-bench).
// For a causal model only tokens 0..t2 are fed (later tokens cannot influence t2) and J_{t1 t2}
// with t1 > t2 is never computed.
//
// Token-local method, for adapters that support it (ModelAdapter::residual_branch_at_token):
// only token t1's input is perturbed, the other tokens' keys/values are held fixed, so each
// J_{t1 t2} costs d replicas of ONE token (about 24 d^3 flops for a GPT block) instead of d
// replicas of the whole sequence. The engine uses it automatically when available.
// Parameters are not modified and no parameter .grad is touched (torch::autograd::grad is asked
// for input gradients only).
#pragma once

#include "coupling/engine/model_adapter.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace coupling {

struct JacobianOptions {
  enum class Method { kAuto, kGeneric, kTokenLocal };
  /// kAuto: token-local when the adapter supports it, else generic.
  Method method = Method::kAuto;
  /// How the generic method differentiates (see the top of this file).
  enum class Generic { kAuto, kRowByRow, kReplicated };
  Generic generic = Generic::kAuto;
  /// Budget for the replicated activations of one backward sweep (bytes). Default 1 GiB.
  int64_t max_bytes = int64_t{1} << 30;
};

/// Estimated autograd working set of one replica of a [tokens, d] block input (bytes):
/// 4 bytes x tokens x (64 d + 16 tokens), which covers a GPT-style block's saved activations
/// (LN, QKV, 4d MLP) and a few heads' attention maps. Used to size chunks; tune max_bytes.
int64_t replica_bytes(int64_t tokens, int64_t d);

/// Replicas per backward sweep under `max_bytes` (at least 1, at most d).
int64_t jacobian_chunk_rows(int64_t tokens, int64_t d, int64_t max_bytes);

/// The generic strategy kAuto uses for a block input of `tokens` x `d`: on a CPU, row by row once
/// a forward pass is work enough to hide the fixed cost of a backward pass (tokens * d^2 >= 2^19,
/// measured in coupling-bench case 1), else replicated; on CUDA, replicated (not yet measured).
JacobianOptions::Generic generic_strategy(int64_t tokens, int64_t d, bool device_is_cuda);

/// Rows [row_begin, row_end) of J^block_{t1, output_token} for every t1 in `input_tokens`:
/// [input_tokens.size(), row_end - row_begin, d]. The cost is proportional to the number of rows,
/// so work can be split by rows (e.g. across ranks). Same errors as jacobians_at_output, plus a
/// coupling::ConfigError for an empty or out-of-range row range.
at::Tensor jacobian_rows(ModelAdapter& adapter, int64_t block, const at::Tensor& x, int64_t output_token,
                         const std::vector<int64_t>& input_tokens, int64_t row_begin, int64_t row_end,
                         const JacobianOptions& options = {});

/// J^block_{t1, output_token} for every t1 in `input_tokens`, for one sequence whose block input
/// is `x` ([T, d]). Returns [input_tokens.size(), d, d] float32. Throws coupling::ConfigError for
/// tokens out of range, or t1 > output_token in a causal model (a causal zero).
at::Tensor jacobians_at_output(ModelAdapter& adapter, int64_t block, const at::Tensor& x, int64_t output_token,
                               const std::vector<int64_t>& input_tokens, const JacobianOptions& options = {});

}  // namespace coupling
