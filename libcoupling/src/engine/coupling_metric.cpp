#include "coupling/engine/coupling_metric.h"

#include "coupling/engine/progress.h"
#include "coupling/error.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <string>

namespace coupling {

double coupling_pair(const at::Tensor& j1, const at::Tensor& s1, const TopK& f2, int64_t k, Orientation orientation,
                     Normalisation normalisation) {
  const auto left = (orientation == Orientation::kUJV ? f2.u : f2.v).narrow(-1, 0, k).to(at::kDouble);
  const auto right = (orientation == Orientation::kUJV ? f2.v : f2.u).narrow(-1, 0, k).to(at::kDouble);
  const auto m = at::matmul(at::matmul(left.t(), j1.to(at::kDouble)), right);
  const auto s = s1.narrow(0, 0, k).to(at::kDouble);
  const double numerator = (m.abs() - at::diag(s)).norm().item<double>();
  const double denominator = normalisation == Normalisation::kNorm ? s.norm().item<double>() : s.sum().item<double>();
  return numerator / denominator;
}

at::Tensor coupling_matrices(const at::Tensor& jacobians, const TopK& factors, const std::vector<int64_t>& k_grid,
                             ProgressMeter* progress) {
  const int64_t d_out = jacobians.size(-2), d_in = jacobians.size(-1);
  const auto rows = [&](int64_t first, int64_t count) { return jacobians.narrow(-3, first, count); };
  if (jacobians.size(-3) != factors.s.size(-2) || d_out != factors.u.size(-2) || d_in != factors.v.size(-2)) {
    throw ConfigError("coupling_matrices: the Jacobians " + c10::str(jacobians.sizes()) +
                      " and their factors (u " + c10::str(factors.u.sizes()) + ") differ in shape");
  }
  return coupling_matrices(rows, factors, k_grid, progress);
}

at::Tensor coupling_matrices(const CouplingRows& jacobian_rows, const TopK& factors, const std::vector<int64_t>& k_grid,
                             ProgressMeter* progress) {
  const int64_t n = factors.s.size(-2), d_out = factors.u.size(-2), d_in = factors.v.size(-2);
  const int64_t k_max = factors.s.size(-1);
  for (int64_t k : k_grid) {
    if (k < 1 || k > k_max) {
      throw ConfigError("K = " + std::to_string(k) + " is outside the computed top-" + std::to_string(k_max) +
                        " factors");
    }
  }
  const auto batch_sizes = factors.s.sizes().slice(0, factors.s.dim() - 2);
  const int64_t batch = c10::multiply_integers(batch_sizes);
  const auto u = factors.u.reshape({batch, n, d_out, k_max});
  const auto v = factors.v.reshape({batch, n, d_in, k_max});
  const auto s = factors.s.reshape({batch, n, k_max}).to(at::kDouble);

  // Rows i are processed in chunks so that the [B, rows, N, K, K] and [B, rows, d, N K]
  // intermediates stay near 64 MiB each (the second dominates at large d: 26 MiB a row at
  // d = 4096, N = 32, K = 50).
  const int64_t row_chunk = std::max<int64_t>(
      1, std::min((int64_t{8} << 20) / std::max<int64_t>(1, batch * n * k_max * k_max),
                  (int64_t{16} << 20) / std::max<int64_t>(1, batch * d_out * n * k_max)));
  std::vector<at::Tensor> per_orientation;
  int64_t done = 0;
  for (const auto orientation : {Orientation::kUJV, Orientation::kVJU}) {
    // ujv: right = V_j (input side), left = U_j; vju swaps them (J is square).
    const auto& right = orientation == Orientation::kUJV ? v : u;
    const auto& left = orientation == Orientation::kUJV ? u : v;
    const auto right_stacked = right.permute({0, 2, 1, 3}).reshape({batch, d_in, n * k_max});  // [B, d, N*K]
    const auto left_t = left.transpose(-2, -1).unsqueeze(1);                                    // [B, 1, Nj, K, d]
    std::vector<at::Tensor> rows_out;
    for (int64_t i0 = 0; i0 < n; i0 += row_chunk) {
      const int64_t rows = std::min(row_chunk, n - i0);
      // One GEMM: J_i (stacked by rows) times the basis matrices of every j.
      const auto j = jacobian_rows(i0, rows).reshape({batch, rows * d_out, d_in});  // J_i stacked by rows
      const auto jr = at::bmm(j, right_stacked)
                          .view({batch, rows, d_out, n, k_max})
                          .permute({0, 1, 3, 2, 4});                   // [B, rows, Nj, d, K]
      const auto m = at::matmul(left_t, jr).to(at::kDouble).abs();     // [B, rows, Nj, K, K]
      const auto s_rows = s.narrow(1, i0, rows);                       // the diagonalised J_i's values
      std::vector<at::Tensor> by_normalisation[2];
      for (int64_t k : k_grid) {
        const auto sk = s_rows.narrow(-1, 0, k);                       // [B, rows, K]
        const auto diff = m.narrow(-2, 0, k).narrow(-1, 0, k) - at::diag_embed(sk).unsqueeze(2);
        const auto numerator = diff.pow(2).sum({-2, -1}).sqrt();       // [B, rows, Nj]
        by_normalisation[0].push_back(numerator / sk.norm(2, -1).unsqueeze(-1));
        by_normalisation[1].push_back(numerator / sk.sum(-1).unsqueeze(-1));
      }
      rows_out.push_back(at::stack({at::stack(by_normalisation[0], 1), at::stack(by_normalisation[1], 1)}, 1));
      done += rows * n;
      if (progress && progress->due()) {
        progress->update(done, fmt::format("{}, rows {}/{} of {} x {} pairs",
                                           orientation == Orientation::kUJV ? "ujv" : "vju", i0 + rows, n, n, n));
      }
    }
    per_orientation.push_back(at::cat(rows_out, -2));  // [B, 2, nK, N, N]
  }
  auto result = at::stack(per_orientation, 1);  // [B, 2, 2, nK, N, N]
  std::vector<int64_t> shape(batch_sizes.begin(), batch_sizes.end());
  for (int64_t extent : {int64_t{2}, int64_t{2}, static_cast<int64_t>(k_grid.size()), n, n}) shape.push_back(extent);
  return result.reshape(shape);
}

at::Tensor mean_over_pairs(const at::Tensor& m, const at::Tensor& mask) {
  const int64_t n = m.size(-1);
  const auto bool_on_device = at::TensorOptions().dtype(at::kBool).device(m.device());
  const auto off_diagonal = at::logical_and(mask.to(m.device()), at::eye(n, bool_on_device).logical_not());
  const auto weights = off_diagonal.to(m.scalar_type());
  const auto count = weights.sum();
  if (count.item<double>() == 0.0) {
    return at::full(m.sizes().slice(0, m.dim() - 2), std::numeric_limits<double>::quiet_NaN(), m.options());
  }
  return (m * weights).sum({-2, -1}) / count;
}

at::Tensor mean_off_diagonal(const at::Tensor& m) {
  const int64_t n = m.size(-1);
  return mean_over_pairs(m, at::ones({n, n}, at::TensorOptions().dtype(at::kBool).device(m.device())));
}

at::Tensor mean_adjacent(const at::Tensor& m) {
  const int64_t n = m.size(-1);
  const auto index = at::arange(n, at::TensorOptions().dtype(at::kLong).device(m.device()));
  const auto distance = (index.unsqueeze(0) - index.unsqueeze(1)).abs();
  return mean_over_pairs(m, distance.eq(1));
}

}  // namespace coupling
