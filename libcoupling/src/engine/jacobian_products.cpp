#include "coupling/engine/jacobian_products.h"

#include "coupling/error.h"
#include "token_local.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <memory>
#include <string>

namespace coupling {
namespace {

/// The token-local function x_{t1} -> f^l(X)_{t2} of one sequence, applied to chunks of replicas.
struct TokenLocalFunction {
  ModelAdapter& adapter;
  int64_t block, input_token, output_token;
  at::Tensor x;   ///< [T, d] float32, detached
  int64_t chunk;  ///< replicas per pass

  /// `rows` replicas of token t1's input, and f of them at t2.
  std::pair<at::Tensor, at::Tensor> evaluate(int64_t rows) const {
    return token_local::evaluate(adapter, block, x, input_token, output_token, rows);
  }

  /// J^T Y for Y [d, r]: row b of a pass's input gradient is J^T y_b.
  at::Tensor vjp(const at::Tensor& y) const {
    at::AutoGradMode grad_on(true);
    auto result = at::empty_like(y);
    for (int64_t c0 = 0; c0 < y.size(1); c0 += chunk) {
      const int64_t columns = std::min(chunk, y.size(1) - c0);
      const auto [replicated, output] = evaluate(columns);
      const auto cotangents = y.narrow(1, c0, columns).t().contiguous();
      const auto grad = torch::autograd::grad({output}, {replicated}, {cotangents}, /*retain_graph=*/false,
                                              /*create_graph=*/false, /*allow_unused=*/true)[0];
      if (grad.defined()) {
        result.narrow(1, c0, columns).copy_(grad.t());
      } else {  // f does not depend on x_{t1} at all
        result.narrow(1, c0, columns).zero_();
      }
    }
    return result;
  }

  /// J X for X [d, r]: g(u) = J^T u with a graph (u a dummy cotangent), then the VJP of g with x_b
  /// is J x_b.
  at::Tensor jvp(const at::Tensor& x_columns) const {
    at::AutoGradMode grad_on(true);
    auto result = at::empty_like(x_columns);
    const int64_t half = std::max<int64_t>(1, chunk / 2);  // the graph of the backward pass is kept too
    for (int64_t c0 = 0; c0 < x_columns.size(1); c0 += half) {
      const int64_t columns = std::min(half, x_columns.size(1) - c0);
      const auto [replicated, output] = evaluate(columns);
      auto dummy = at::zeros_like(output).requires_grad_(true);
      const auto transposed = torch::autograd::grad({output}, {replicated}, {dummy}, /*retain_graph=*/true,
                                                    /*create_graph=*/true, /*allow_unused=*/true)[0];
      at::Tensor product;
      if (transposed.defined() && transposed.requires_grad()) {
        const auto tangents = x_columns.narrow(1, c0, columns).t().contiguous();
        product = torch::autograd::grad({transposed}, {dummy}, {tangents}, /*retain_graph=*/false,
                                        /*create_graph=*/false, /*allow_unused=*/true)[0];
      }
      if (product.defined()) {
        result.narrow(1, c0, columns).copy_(product.t());
      } else {  // J = 0: f does not depend on x_{t1}
        result.narrow(1, c0, columns).zero_();
      }
    }
    return result;
  }
};

}  // namespace

LinearOperator jacobian_operator(ModelAdapter& adapter, int64_t block, const at::Tensor& x, int64_t input_token,
                                 int64_t output_token, int64_t max_bytes) {
  if (!adapter.supports_token_local()) {
    throw ConfigError(
        "the matrix-free Jacobian path needs the adapter's token-local function (supports_token_local()): "
        "use the materialised path for this model");
  }
  if (x.dim() != 2) throw ConfigError("jacobian_operator expects one sequence's block input [T, d]");
  const int64_t tokens = x.size(0), d = x.size(1);
  token_local::check_request(adapter, block, tokens, output_token, {input_token});
  const int64_t chunk = token_local::replicas_per_pass(tokens, d, max_bytes);
  const auto function = std::make_shared<TokenLocalFunction>(
      TokenLocalFunction{adapter, block, input_token, output_token, x.detach().to(at::kFloat), chunk});
  LinearOperator op;
  op.rows = d;
  op.cols = d;
  op.device = x.device();
  op.multiply = [function](const at::Tensor& columns) { return function->jvp(columns); };
  op.multiply_transpose = [function](const at::Tensor& columns) { return function->vjp(columns); };
  return op;
}

}  // namespace coupling
