#include "coupling/engine/spectrum.h"

#include "coupling/error.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>
#include <string>

namespace coupling {
namespace {

void check_rank(int64_t k, int64_t rows, int64_t cols) {
  if (k < 1 || k > std::min(rows, cols)) {
    throw ConfigError("top-K with K = " + std::to_string(k) + " is impossible for " + std::to_string(rows) + " x " +
                      std::to_string(cols) + " matrices: choose 1 <= K <= " + std::to_string(std::min(rows, cols)));
  }
}

/// Orthonormal basis of the columns of y ([..., m, r]).
at::Tensor orthonormalise(const at::Tensor& y) { return std::get<0>(at::linalg_qr(y, "reduced")); }

}  // namespace

TopK exact_topk(const at::Tensor& matrices, int64_t k, SvdPrecision precision) {
  const int64_t rows = matrices.size(-2), cols = matrices.size(-1);
  check_rank(k, rows, cols);
  const auto work = matrices.to(precision == SvdPrecision::kFloat64 ? at::kDouble : at::kFloat);
  auto [u, s, vh] = at::linalg_svd(work, /*full_matrices=*/false);
  return {u.narrow(-1, 0, k).to(at::kFloat).contiguous(), s.narrow(-1, 0, k).to(at::kFloat).contiguous(),
          vh.narrow(-2, 0, k).transpose(-2, -1).to(at::kFloat).contiguous()};
}

LinearOperator dense_operator(const at::Tensor& matrices) {
  const auto sizes = matrices.sizes();
  LinearOperator op;
  op.batch.assign(sizes.begin(), sizes.end() - 2);
  op.rows = matrices.size(-2);
  op.cols = matrices.size(-1);
  op.device = matrices.device();
  op.multiply = [matrices](const at::Tensor& x) { return at::matmul(matrices, x); };
  op.multiply_transpose = [matrices](const at::Tensor& y) { return at::matmul(matrices.transpose(-2, -1), y); };
  return op;
}

at::Tensor test_matrix(const std::vector<int64_t>& batch, int64_t rows, int64_t cols, int64_t k,
                       const RandomizedOptions& options) {
  check_rank(k, rows, cols);
  const int64_t width = std::min(k + std::max<int64_t>(0, options.oversample), std::min(rows, cols));
  std::vector<int64_t> shape = batch;
  shape.push_back(cols);
  shape.push_back(width);
  auto generator = at::detail::createCPUGenerator(options.seed);
  return at::randn(shape, generator, at::TensorOptions().dtype(at::kFloat));
}

TopK randomized_topk(const LinearOperator& op, int64_t k, const RandomizedOptions& options, const at::Tensor& omega) {
  check_rank(k, op.rows, op.cols);
  const auto test = (omega.defined() ? omega : test_matrix(op.batch, op.rows, op.cols, k, options)).to(op.device);
  auto q = orthonormalise(op.multiply(test));  // range of J Omega, [..., rows, width]
  for (int64_t i = 0; i < options.power_iterations; ++i) {
    auto z = orthonormalise(op.multiply_transpose(q));  // [..., cols, width]
    q = orthonormalise(op.multiply(z));
  }
  // B = Q^T J, computed as (J^T Q)^T: [..., width, cols]. Its SVD B = Ub S Vh gives J ~ (Q Ub) S Vh.
  auto b = op.multiply_transpose(q).transpose(-2, -1);
  auto [ub, s, vh] = at::linalg_svd(b, /*full_matrices=*/false);
  auto u = at::matmul(q, ub.narrow(-1, 0, k));
  return {u.contiguous(), s.narrow(-1, 0, k).contiguous(), vh.narrow(-2, 0, k).transpose(-2, -1).contiguous()};
}

bool uses_randomized(SpectrumMethod method, int64_t k, int64_t d) {
  return method == SpectrumMethod::kRandomized || (method == SpectrumMethod::kAuto && 4 * k <= d);
}

TopK top_singular(const at::Tensor& jacobians, int64_t k, SpectrumMethod method, SvdPrecision precision,
                  const RandomizedOptions& randomized, const at::Tensor& omega) {
  const auto finite = at::isfinite(jacobians).flatten(-2).all(-1);  // [...]
  const bool all_finite = finite.all().item<bool>();
  const auto input =
      all_finite ? jacobians : at::where(finite.unsqueeze(-1).unsqueeze(-1), jacobians, at::zeros_like(jacobians));
  TopK f = uses_randomized(method, k, jacobians.size(-1)) ? randomized_topk(dense_operator(input), k, randomized, omega)
                                                          : exact_topk(input, k, precision);
  if (!all_finite) {
    const auto bad = finite.logical_not();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    f.u = f.u.masked_fill(bad.unsqueeze(-1).unsqueeze(-1), nan);
    f.v = f.v.masked_fill(bad.unsqueeze(-1).unsqueeze(-1), nan);
    f.s = f.s.masked_fill(bad.unsqueeze(-1), nan);
  }
  return f;
}

}  // namespace coupling
