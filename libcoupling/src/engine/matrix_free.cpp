#include "coupling/engine/matrix_free.h"

#include "coupling/engine/coupling_metric.h"
#include "coupling/engine/progress.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace coupling {

MatrixFreeSpectrum matrix_free_topk(const LinearOperator& jacobian, int64_t k, const RandomizedOptions& options,
                                    const at::Tensor& omega) {
  const auto test = omega.to(jacobian.device);
  const auto sample = jacobian.multiply(test);  // J Omega, also the range finder's first product
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (!at::isfinite(sample).all().item<bool>()) {
    const auto options_f = sample.options();
    return {{at::full({jacobian.rows, k}, nan, options_f), at::full({k}, nan, options_f),
             at::full({jacobian.cols, k}, nan, options_f)},
            nan};
  }
  const double frobenius = sample.to(at::kDouble).norm().item<double>() / std::sqrt(static_cast<double>(test.size(-1)));
  LinearOperator reusing = jacobian;  // the first product is not computed twice
  reusing.multiply = [sample, test, &jacobian](const at::Tensor& x) {
    return x.is_same(test) ? sample : jacobian.multiply(x);
  };
  return {randomized_topk(reusing, k, options, test), frobenius};
}

at::Tensor matrix_free_coupling(const JacobianOf& jacobian, const TopK& factors, const std::vector<int64_t>& k_grid,
                                const at::Tensor& pairs, ProgressMeter* progress) {
  const int64_t n = factors.s.size(0), d = factors.u.size(1), k_max = factors.s.size(1);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  auto result =
      at::full({2, 2, static_cast<int64_t>(k_grid.size()), n, n}, std::numeric_limits<double>::quiet_NaN(), f64);
  const auto chosen = pairs.cpu();
  for (int64_t i = 0; i < n; ++i) {
    const auto partners = chosen[i].nonzero().flatten();
    const int64_t m = partners.size(0);
    if (m == 0 || !at::isfinite(factors.s[i]).all().item<bool>()) continue;
    const auto index = partners.to(factors.u.device());
    const auto u = factors.u.index_select(0, index), v = factors.v.index_select(0, index);  // [m, d, K]
    // One batch of VJPs: J_i^T [U_j1 .. U_jm, V_j1 .. V_jm].
    const auto cotangents =
        at::cat({u.permute({1, 0, 2}).reshape({d, m * k_max}), v.permute({1, 0, 2}).reshape({d, m * k_max})}, 1);
    const auto products = jacobian(i).multiply_transpose(cotangents).view({d, 2, m, k_max}).permute({1, 2, 0, 3});
    // ujv: U_j^T J_i V_j = (J_i^T U_j)^T V_j; vju: V_j^T J_i U_j = (J_i^T V_j)^T U_j.
    const auto ujv = at::matmul(products[0].transpose(-2, -1), v);
    const auto vju = at::matmul(products[1].transpose(-2, -1), u);
    const auto values = coupling_values(at::stack({ujv, vju}).to(at::kDouble), factors.s[i], k_grid);  // [2, 2, nK, m]
    result.select(3, i).index_copy_(-1, partners, values.cpu());
    if (progress && progress->due()) progress->update(i + 1, "matrix-free coupling rows");
  }
  return result;
}

at::Tensor band_pairs(const std::vector<int64_t>& block_of, int64_t band) {
  const auto blocks = at::tensor(block_of, at::kLong);
  const auto distance = (blocks.unsqueeze(0) - blocks.unsqueeze(1)).abs();
  return band <= 0 ? at::ones_like(distance, at::kBool) : distance.le(band);
}

}  // namespace coupling
