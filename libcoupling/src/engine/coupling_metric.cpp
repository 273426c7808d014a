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
  const int64_t n = jacobians.size(-3), d_out = jacobians.size(-2), d_in = jacobians.size(-1);
  if (n != factors.s.size(-2) || d_out != factors.u.size(-2) || d_in != factors.v.size(-2)) {
    throw ConfigError("coupling_matrices: the Jacobians " + c10::str(jacobians.sizes()) + " and their factors (u " +
                      c10::str(factors.u.sizes()) + ") differ in shape");
  }
  const auto flat = jacobians.reshape({-1, n, d_out, d_in});
  const auto rows = [&](int64_t batch_first, int64_t batch_count, int64_t first, int64_t count) {
    return flat.narrow(0, batch_first, batch_count).narrow(1, first, count);
  };
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

  // Work goes in chunks of (batch element, row i) units, so that each chunk's [rows, N, K, K] and
  // [rows, d, N K] intermediates and its fetched Jacobians stay near 64, 64 and 128 MiB: at
  // d = 4096 a chunk holds two Jacobians, whatever N and K. Whole rows of the set come first
  // (a chunk of several batch elements), then single rows.
  const int64_t units = std::max<int64_t>(1, std::min({(int64_t{8} << 20) / std::max<int64_t>(1, n * k_max * k_max),
                                                       (int64_t{16} << 20) / std::max<int64_t>(1, d_out * n * k_max),
                                                       (int64_t{32} << 20) / std::max<int64_t>(1, d_out * d_in)}));
  const int64_t batch_chunk = std::clamp<int64_t>(units / n, 1, batch);
  const int64_t row_chunk = units >= n ? n : units;
  std::vector<at::Tensor> per_orientation;
  int64_t done = 0;  // (batch element, i, j) entries, over both orientations
  for (const auto orientation : {Orientation::kUJV, Orientation::kVJU}) {
    // ujv: right = V_j (input side), left = U_j; vju swaps them (J is square).
    const auto& right = orientation == Orientation::kUJV ? v : u;
    const auto& left = orientation == Orientation::kUJV ? u : v;
    const auto right_stacked = right.permute({0, 2, 1, 3}).reshape({batch, d_in, n * k_max});  // [B, d, N*K]
    const auto left_t = left.transpose(-2, -1).unsqueeze(1);                                   // [B, 1, Nj, K, d]
    std::vector<at::Tensor> per_batch_chunk;
    for (int64_t b0 = 0; b0 < batch; b0 += batch_chunk) {
      const int64_t bc = std::min(batch_chunk, batch - b0);
      std::vector<at::Tensor> rows_out;
      for (int64_t i0 = 0; i0 < n; i0 += row_chunk) {
        const int64_t rows = std::min(row_chunk, n - i0);
        // One GEMM: J_i (stacked by rows) times the basis matrices of every j.
        const auto j = jacobian_rows(b0, bc, i0, rows).reshape({bc, rows * d_out, d_in});  // J_i stacked by rows
        const auto jr = at::bmm(j, right_stacked.narrow(0, b0, bc))
                            .view({bc, rows, d_out, n, k_max})
                            .permute({0, 1, 3, 2, 4});                            // [b, rows, Nj, d, K]
        const auto m = at::matmul(left_t.narrow(0, b0, bc), jr).to(at::kDouble);  // [b, rows, Nj, K, K]
        rows_out.push_back(
            coupling_values(m, s.narrow(0, b0, bc).narrow(1, i0, rows), k_grid).permute({0, 2, 3, 1, 4}));
        done += bc * rows * n;
        if (progress && progress->due()) {  // the meter counts the 2 N^2 entries of one batch element
          progress->update(done / batch,
                           fmt::format("{}, rows {}/{} of {} x {} pairs",
                                       orientation == Orientation::kUJV ? "ujv" : "vju", i0 + rows, n, n, n));
        }
      }
      per_batch_chunk.push_back(at::cat(rows_out, -2));  // [b, 2, nK, N, N]
    }
    per_orientation.push_back(at::cat(per_batch_chunk, 0));  // [B, 2, nK, N, N]
  }
  auto result = at::stack(per_orientation, 1);  // [B, 2, 2, nK, N, N]
  std::vector<int64_t> shape(batch_sizes.begin(), batch_sizes.end());
  for (int64_t extent : {int64_t{2}, int64_t{2}, static_cast<int64_t>(k_grid.size()), n, n}) shape.push_back(extent);
  return result.reshape(shape);
}

at::Tensor coupling_values(const at::Tensor& projected, const at::Tensor& s, const std::vector<int64_t>& k_grid) {
  const auto s_rows = s.to(at::kDouble).unsqueeze(-2);  // [..., 1, Kmax]: the diagonalised J_i's values
  std::vector<at::Tensor> by_normalisation[2];
  for (int64_t k : k_grid) {
    const auto sk = s_rows.narrow(-1, 0, k);  // [..., 1, K]
    const auto diff = projected.narrow(-2, 0, k).narrow(-1, 0, k).abs() - at::diag_embed(sk);
    const auto numerator = diff.pow(2).sum({-2, -1}).sqrt();  // [..., Nj]
    by_normalisation[0].push_back(numerator / sk.norm(2, -1));
    by_normalisation[1].push_back(numerator / sk.sum(-1));
  }
  const auto dim = projected.dim() - 3;  // the (normalisation, k) axes go before Nj
  return at::stack({at::stack(by_normalisation[0], dim), at::stack(by_normalisation[1], dim)}, dim);
}

at::Tensor mean_over_pairs(const at::Tensor& m, const at::Tensor& mask) {
  const int64_t n = m.size(-1);
  const auto bool_on_device = at::TensorOptions().dtype(at::kBool).device(m.device());
  const auto off_diagonal = at::logical_and(mask.to(m.device()), at::eye(n, bool_on_device).logical_not());
  const auto count = off_diagonal.sum();
  if (count.item<int64_t>() == 0) {
    return at::full(m.sizes().slice(0, m.dim() - 2), std::numeric_limits<double>::quiet_NaN(), m.options());
  }
  // Entries outside the mask may be NaN (outside a depth band): they are left out, not multiplied by 0.
  return at::where(off_diagonal, m, at::zeros({}, m.options())).sum({-2, -1}) / count.to(m.scalar_type());
}

at::Tensor mean_off_diagonal(const at::Tensor& m) {
  const int64_t n = m.size(-1);
  return mean_over_pairs(m, at::ones({n, n}, at::TensorOptions().dtype(at::kBool).device(m.device())));
}

at::Tensor adjacent_pairs(int64_t n) {
  const auto index = at::arange(n, at::kLong);
  return (index.unsqueeze(0) - index.unsqueeze(1)).abs().eq(1);
}

at::Tensor mean_adjacent(const at::Tensor& m) { return mean_over_pairs(m, adjacent_pairs(m.size(-1))); }

}  // namespace coupling
