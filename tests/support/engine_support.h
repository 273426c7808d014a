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

/// A random orthogonal d x d matrix.
inline at::Tensor random_orthogonal(int64_t d, at::Generator& generator) {
  return std::get<0>(at::linalg_qr(at::randn({d, d}, generator, at::TensorOptions())));
}

}  // namespace engine_support
