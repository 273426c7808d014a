// Independent brute-force references for the engine tests: row-by-row autograd Jacobians and a
// linear-block model with known Jacobians.
#pragma once

#include "coupling/engine/model_adapter.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <functional>
#include <memory>
#include <vector>

namespace engine_support {

/// J_{t1 t2} of `branch` at x ([T, d]) by one autograd call per output coordinate.
inline at::Tensor brute_force_jacobian(const std::function<at::Tensor(const at::Tensor&)>& branch, const at::Tensor& x,
                                       int64_t t1, int64_t t2) {
  at::AutoGradMode grad_on(true);
  const int64_t d = x.size(1);
  auto input = x.detach().clone().unsqueeze(0).requires_grad_(true);
  auto output = branch(input);
  auto j = at::empty({d, d}, x.options());
  for (int64_t i = 0; i < d; ++i) {
    auto g = torch::autograd::grad({output[0][t2][i]}, {input}, {}, /*retain_graph=*/true)[0];
    j[i].copy_(g[0][t1]);
  }
  return j;
}

/// A model of linear "blocks" f_l(X) = X A_l^T (token-local), so J^l_{tt} = A_l exactly.
/// Inputs are the embeddings X^0 themselves ([B, T, d]).
inline std::unique_ptr<coupling::LambdaAdapter> linear_blocks(std::vector<at::Tensor> matrices) {
  auto shared = std::make_shared<std::vector<at::Tensor>>(std::move(matrices));
  const auto blocks = static_cast<int64_t>(shared->size());
  return std::make_unique<coupling::LambdaAdapter>(
      blocks, /*causal=*/true,
      [shared](const at::Tensor& x0) {
        std::vector<at::Tensor> states{x0};
        for (const auto& a : *shared) states.push_back(states.back() + at::matmul(states.back(), a.t()));
        return states;
      },
      [shared](int64_t l, const at::Tensor& x) { return at::matmul(x, (*shared)[l].t()); });
}

/// linear_blocks with the token-local function too (f_l at a token sees only that token), so the
/// matrix-free path can run on it.
class TokenLocalLinearBlocks : public coupling::ModelAdapter {
 public:
  explicit TokenLocalLinearBlocks(std::vector<at::Tensor> matrices)
      : matrices_(matrices), blocks_(linear_blocks(std::move(matrices))) {}
  int64_t num_blocks() const override { return blocks_->num_blocks(); }
  bool causal() const override { return true; }
  std::vector<at::Tensor> residual_states(const at::Tensor& x0) override { return blocks_->residual_states(x0); }
  at::Tensor residual_branch(int64_t l, const at::Tensor& x) override { return blocks_->residual_branch(l, x); }
  bool supports_token_local() const override { return true; }
  at::Tensor residual_branch_at_token(int64_t l, const at::Tensor& x, int64_t input_token, const at::Tensor& replaced,
                                      int64_t output_token) override {
    if (input_token != output_token)
      return at::matmul(x[output_token], matrices_[l].t()).expand_as(replaced) + 0.0 * replaced;
    return at::matmul(replaced, matrices_[l].t());
  }

 private:
  std::vector<at::Tensor> matrices_;
  std::unique_ptr<coupling::LambdaAdapter> blocks_;
};

/// A random orthogonal d x d matrix.
inline at::Tensor random_orthogonal(int64_t d, at::Generator& generator) {
  return std::get<0>(at::linalg_qr(at::randn({d, d}, generator, at::TensorOptions())));
}

}  // namespace engine_support
