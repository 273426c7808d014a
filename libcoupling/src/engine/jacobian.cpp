#include "coupling/engine/jacobian.h"

#include "coupling/error.h"
#include "token_local.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <string>

namespace coupling {

/// tokens * d^2 from which a CPU backward pass per row beats the replicated batch (coupling-bench).
constexpr int64_t kRowByRowMinWork = int64_t{1} << 19;

int64_t replica_bytes(int64_t tokens, int64_t d) { return 4 * tokens * (64 * d + 16 * tokens); }

int64_t jacobian_chunk_rows(int64_t tokens, int64_t d, int64_t max_bytes) {
  return std::clamp<int64_t>(max_bytes / std::max<int64_t>(1, replica_bytes(tokens, d)), 1, d);
}

JacobianOptions::Generic generic_strategy(int64_t tokens, int64_t d, bool device_is_cuda) {
  // On CUDA the replicated batch stays (as before this choice existed): not measured on a GPU yet.
  if (device_is_cuda) return JacobianOptions::Generic::kReplicated;
  return tokens * d * d >= kRowByRowMinWork ? JacobianOptions::Generic::kRowByRow
                                            : JacobianOptions::Generic::kReplicated;
}

namespace token_local {

void check_request(const ModelAdapter& adapter, int64_t block, int64_t tokens, int64_t output_token,
                   const std::vector<int64_t>& input_tokens) {
  if (block < 0 || block >= adapter.num_blocks()) {
    throw ConfigError("block " + std::to_string(block) + " out of range: the model has " +
                      std::to_string(adapter.num_blocks()) + " blocks");
  }
  if (output_token < 0 || output_token >= tokens) {
    throw ConfigError("output token " + std::to_string(output_token) + " out of range [0, " + std::to_string(tokens) +
                      ")");
  }
  for (int64_t t1 : input_tokens) {
    if (t1 < 0 || t1 >= tokens) {
      throw ConfigError("input token " + std::to_string(t1) + " out of range [0, " + std::to_string(tokens) + ")");
    }
    if (adapter.causal() && t1 > output_token) {
      throw ConfigError("J_{" + std::to_string(t1) + "," + std::to_string(output_token) +
                        "} is a causal zero (input token after output token): request pairs with t1 <= t2");
    }
  }
}

int64_t replicas_per_pass(int64_t tokens, int64_t d, int64_t max_bytes) {
  // Per replica: one token's activations plus its attention row (replica_bytes with T = 1 token).
  return std::clamp<int64_t>(max_bytes / std::max<int64_t>(1, replica_bytes(1, d) + 4 * 16 * tokens), 1, d);
}

std::pair<at::Tensor, at::Tensor> evaluate(ModelAdapter& adapter, int64_t block, const at::Tensor& x,
                                           int64_t input_token, int64_t output_token, int64_t rows) {
  auto replicated = x.select(0, input_token).unsqueeze(0).expand({rows, x.size(1)}).clone().requires_grad_(true);
  auto output = adapter.residual_branch_at_token(block, x, input_token, replicated, output_token);
  if (!output.defined() || !output.sizes().equals(replicated.sizes())) {
    throw ConfigError("residual_branch_at_token of block " + std::to_string(block) +
                      " must map [B, d] to [B, d]; or make supports_token_local() return false");
  }
  return {replicated, output};
}

}  // namespace token_local

namespace {

/// J_{t1 t2} through the adapter's token-local evaluation: d replicas of token t1's input, one
/// backward pass per chunk of replicas.
at::Tensor token_local_jacobian(ModelAdapter& adapter, int64_t block, const at::Tensor& x, int64_t input_token,
                                int64_t output_token, int64_t row_begin, int64_t row_end, int64_t max_bytes) {
  const int64_t d = x.size(1);
  auto result = at::empty({row_end - row_begin, d}, x.options());
  const int64_t chunk = token_local::replicas_per_pass(x.size(0), d, max_bytes);
  for (int64_t row0 = row_begin; row0 < row_end; row0 += chunk) {
    const int64_t rows = std::min(chunk, row_end - row0);
    auto [replicated, output] = token_local::evaluate(adapter, block, x, input_token, output_token, rows);
    auto cotangent = at::zeros_like(output);
    cotangent.narrow(1, row0, rows).diagonal().fill_(1.0);
    result.narrow(0, row0 - row_begin, rows).copy_(torch::autograd::grad({output}, {replicated}, {cotangent})[0]);
  }
  return result;
}

void check_branch_shape(const at::Tensor& output, const at::Tensor& input, int64_t block) {
  if (!output.sizes().equals(input.sizes())) {
    throw ConfigError("residual_branch of block " + std::to_string(block) + " returned shape " +
                      c10::str(output.sizes()) + " for input " + c10::str(input.sizes()) +
                      ": it must map [B, T, d] to [B, T, d]");
  }
}

}  // namespace

at::Tensor jacobians_at_output(ModelAdapter& adapter, int64_t block, const at::Tensor& x, int64_t output_token,
                               const std::vector<int64_t>& input_tokens, const JacobianOptions& options) {
  return jacobian_rows(adapter, block, x, output_token, input_tokens, 0, x.dim() == 2 ? x.size(1) : 0, options);
}

at::Tensor jacobian_rows(ModelAdapter& adapter, int64_t block, const at::Tensor& x, int64_t output_token,
                         const std::vector<int64_t>& input_tokens, int64_t row_begin, int64_t row_end,
                         const JacobianOptions& options) {
  if (x.dim() != 2) throw ConfigError("jacobians_at_output expects one sequence's block input [T, d]");
  const int64_t tokens = x.size(0), d = x.size(1);
  token_local::check_request(adapter, block, tokens, output_token, input_tokens);
  if (row_begin < 0 || row_end > d || row_begin >= row_end) {
    throw ConfigError("Jacobian rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) +
                      ") are not a non-empty range within [0, " + std::to_string(d) + ")");
  }
  const bool token_local = options.method == JacobianOptions::Method::kTokenLocal ||
                           (options.method == JacobianOptions::Method::kAuto && adapter.supports_token_local());
  at::AutoGradMode grad_on(true);
  if (token_local) {
    if (!adapter.supports_token_local()) {
      throw ConfigError("the token-local Jacobian method was requested but this adapter does not support it");
    }
    const auto input = x.detach().to(at::kFloat);
    std::vector<at::Tensor> per_input;
    for (int64_t t1 : input_tokens) {
      per_input.push_back(
          token_local_jacobian(adapter, block, input, t1, output_token, row_begin, row_end, options.max_bytes));
    }
    return at::stack(per_input);
  }
  // A causal block's output at t2 cannot see later tokens: feed only 0..t2.
  const int64_t used = adapter.causal() ? output_token + 1 : tokens;
  const auto input = x.narrow(0, 0, used).detach().to(at::kFloat);
  const auto index = at::tensor(input_tokens, at::kLong).to(input.device());
  auto result = at::empty({static_cast<int64_t>(input_tokens.size()), row_end - row_begin, d}, input.options());
  const auto strategy =
      options.generic == JacobianOptions::Generic::kAuto ? generic_strategy(used, d, input.is_cuda()) : options.generic;
  if (strategy == JacobianOptions::Generic::kRowByRow) {
    auto sequence = input.unsqueeze(0).clone().requires_grad_(true);
    auto output = adapter.residual_branch(block, sequence);
    check_branch_shape(output, sequence, block);
    const auto at_output = output[0][output_token];
    for (int64_t row = row_begin; row < row_end; ++row) {
      auto grad = torch::autograd::grad({at_output[row]}, {sequence}, {}, /*retain_graph=*/true)[0];  // [1, used, d]
      result.select(1, row - row_begin).copy_(grad[0].index_select(0, index));
    }
    return result;
  }
  const int64_t chunk = jacobian_chunk_rows(used, d, options.max_bytes);
  for (int64_t row0 = row_begin; row0 < row_end; row0 += chunk) {
    const int64_t rows = std::min(chunk, row_end - row0);
    auto replicated = input.unsqueeze(0).expand({rows, used, d}).clone().requires_grad_(true);
    auto output = adapter.residual_branch(block, replicated);
    check_branch_shape(output, replicated, block);
    // Replica r carries the cotangent e_{row0 + r} at the output token.
    auto cotangent = at::zeros_like(output);
    cotangent.select(1, output_token).narrow(1, row0, rows).diagonal().fill_(1.0);
    auto grad = torch::autograd::grad({output}, {replicated}, {cotangent})[0];  // [rows, used, d]
    result.narrow(1, row0 - row_begin, rows).copy_(grad.index_select(1, index).transpose(0, 1));
  }
  return result;
}

}  // namespace coupling
