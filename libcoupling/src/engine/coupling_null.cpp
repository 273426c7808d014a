#include "coupling/engine/coupling_null.h"

#include "coupling/error.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>

namespace coupling {
namespace {

/// Haar-random d x k orthonormal frames [draws, d, k]: QR of a Gaussian matrix, with the signs
/// of R's diagonal moved into Q (without that step the law is not Haar).
at::Tensor haar_frames(int64_t draws, int64_t d, int64_t k, at::Generator& generator) {
  const auto gaussian = at::randn({draws, d, k}, generator, at::TensorOptions().dtype(at::kDouble));
  auto [q, r] = at::linalg_qr(gaussian, "reduced");
  return q * at::diagonal(r, 0, -2, -1).sign().unsqueeze(-2);
}

/// What m_K of a projection M = U^T diag(sigma) V needs of each Haar pair (U, V), when sigma = tau
/// past the first Kmax coordinates: with delta_j = sigma_j - tau (j < Kmax), C = U^T V and A, B
/// the first Kmax rows of U and V,
///   M = tau C + A^T diag(delta) B,        M_aa = tau C_aa + sum_j delta_j A_ja B_ja,
///   ||M_K||_F^2 = tau^2 ||C_K||^2 + 2 tau delta . w_K + delta^T G_K delta,
/// with w_K = diag(A_K C_K B_K^T) and G_K = (A_K A_K^T) o (B_K B_K^T) (A_K, B_K, C_K: the first K
/// columns). So a Jacobian costs Kmax^2 per draw and K, whatever d, and M is never formed.
/// The [R, Kmax, Kmax] tensors are kept as [Kmax (j), R Kmax] matrices, so that a batch of delta
/// rows meets every draw in one GEMM.
struct NullDraws {
  at::Tensor cross_diagonal;       ///< C_aa [R, Kmax]
  at::Tensor diagonal_weights;     ///< A o B [Kmax (j), R Kmax (a)]
  std::vector<at::Tensor> cross2;  ///< per K: ||C_K||_F^2 [R]
  std::vector<at::Tensor> w;       ///< per K: w_K [R, Kmax]
  std::vector<at::Tensor> gram;    ///< per K: G_K [Kmax (j), R Kmax (l)]
};

/// [R, Kmax (j), Kmax] -> [Kmax (j), R Kmax]: the per-draw matrices side by side.
at::Tensor side_by_side(const at::Tensor& per_draw) {
  return per_draw.permute({1, 0, 2}).reshape({per_draw.size(1), -1}).contiguous();
}

/// The draws for (d, K grid, draws, seed), made once per process: they are a fixed part of the
/// null's definition, small (about (nK + 1) x draws x Kmax^2 doubles) and slow to make at large d
/// (QR of d x Kmax matrices), so every later measurement of the same shape reuses them.
const NullDraws& null_draws(int64_t d, const std::vector<int64_t>& k_grid, int64_t k_max, const NullOptions& options) {
  static std::mutex mutex;
  static std::map<std::tuple<int64_t, std::vector<int64_t>, int64_t, int64_t, uint64_t>, NullDraws> made;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(d, k_grid, k_max, options.draws, options.seed);
  if (const auto found = made.find(key); found != made.end()) return found->second;
  auto generator = at::detail::createCPUGenerator(options.seed);
  const auto u = haar_frames(options.draws, d, k_max, generator);
  const auto v = haar_frames(options.draws, d, k_max, generator);
  const auto c = at::matmul(u.transpose(-2, -1), v);                // [R, Kmax, Kmax]
  const auto a = u.narrow(1, 0, k_max), b = v.narrow(1, 0, k_max);  // [R, Kmax (j), Kmax]
  NullDraws draws{at::diagonal(c, 0, -2, -1).contiguous(), side_by_side(a * b), {}, {}, {}};
  for (int64_t k : k_grid) {
    const auto ak = a.narrow(2, 0, k), bk = b.narrow(2, 0, k), ck = c.narrow(1, 0, k).narrow(2, 0, k);
    draws.cross2.push_back(ck.pow(2).sum({-2, -1}));
    draws.w.push_back(at::diagonal(at::matmul(at::matmul(ak, ck), bk.transpose(-2, -1)), 0, -2, -1).contiguous());
    draws.gram.push_back(side_by_side(at::matmul(ak, ak.transpose(-2, -1)) * at::matmul(bk, bk.transpose(-2, -1))));
  }
  return made.emplace(key, std::move(draws)).first->second;
}

}  // namespace

CouplingNull coupling_null(const at::Tensor& singular_values, const at::Tensor& frobenius, int64_t d,
                           const std::vector<int64_t>& k_grid, const NullOptions& options) {
  const int64_t k_max = singular_values.size(-1);
  if (k_grid.empty() || k_grid.back() > k_max || k_max > d || options.draws < 2) {
    throw Error("coupling_null needs 0 < K <= Kmax <= d and at least two draws");
  }
  const auto batch = singular_values.sizes().slice(0, singular_values.dim() - 1).vec();
  const auto s = singular_values.to(at::kDouble).cpu().reshape({-1, k_max});  // [B, Kmax]
  const auto f = frobenius.to(at::kDouble).cpu().reshape({-1});               // [B]
  // The flat tail: sigma_j = tau for j > Kmax, with the energy ||J||_F^2 - sum s^2 left (clamped
  // at 0: a Hutchinson ||J||_F can fall below the top values' energy).
  const auto tail_energy = (f.pow(2) - s.pow(2).sum(-1)).clamp_min(0);
  const auto tau = d > k_max ? (tail_energy / static_cast<double>(d - k_max)).sqrt() : at::zeros_like(f);
  const NullDraws& draws = null_draws(d, k_grid, k_max, options);

  // Per Jacobian and draw: the diagonal of M and, per K, ||M_K||_F^2; then m_K. A few hundred
  // Jacobians at a time: [B, R, Kmax] doubles each.
  const int64_t count = s.size(0), draw_count = options.draws;
  const int64_t chunk = std::max<int64_t>(1, (int64_t{32} << 20) / (8 * draw_count * k_max));
  std::vector<at::Tensor> values;
  for (int64_t b0 = 0; b0 < count; b0 += chunk) {
    const int64_t bc = std::min(chunk, count - b0);
    const auto sb = s.narrow(0, b0, bc);
    const auto t = tau.narrow(0, b0, bc).view({bc, 1});
    const auto delta = sb - t;                               // [bc, Kmax]
    const auto each_draw = [&](const at::Tensor& weights) {  // delta_j weights_r[j][a] summed over j
      return at::matmul(delta, weights).view({bc, draw_count, k_max});
    };
    const auto diagonal =
        (t.unsqueeze(-1) * draws.cross_diagonal.unsqueeze(0) + each_draw(draws.diagonal_weights)).abs();
    std::vector<at::Tensor> by_normalisation[2];
    for (size_t i = 0; i < k_grid.size(); ++i) {
      const int64_t k = k_grid[i];
      const auto quadratic = (each_draw(draws.gram[i]) * delta.unsqueeze(1)).sum(-1);  // delta^T G_K delta [bc, R]
      const auto frobenius2 =
          t.pow(2) * draws.cross2[i] + 2 * t * at::matmul(delta, draws.w[i].transpose(0, 1)) + quadratic;
      const auto sk = sb.narrow(1, 0, k);  // [bc, K]
      // || |M_K| - S_K ||_F^2 = ||M_K||^2 - 2 sum_a s_a |M_aa| + ||s_K||^2 (>= 0 but for round-off)
      const auto numerator =
          (frobenius2 - 2 * (diagonal.narrow(2, 0, k) * sk.unsqueeze(1)).sum(-1) + sk.pow(2).sum(-1, /*keepdim=*/true))
              .clamp_min(0)
              .sqrt();
      by_normalisation[0].push_back(numerator / sk.norm(2, -1, /*keepdim=*/true));
      by_normalisation[1].push_back(numerator / sk.sum(-1, /*keepdim=*/true));
    }
    values.push_back(at::stack({at::stack(by_normalisation[0], 1), at::stack(by_normalisation[1], 1)}, 1));
  }
  const auto all = at::cat(values);  // [B, 2, nK, R]
  auto shape = batch;
  shape.insert(shape.end(), {2, static_cast<int64_t>(k_grid.size())});
  return {all.mean(-1).reshape(shape), all.std(-1, /*unbiased=*/true).reshape(shape)};
}

CouplingNull null_over_pairs(const CouplingNull& members, const at::Tensor& mask) {
  const int64_t n = members.mean.size(-1);
  const auto off_diagonal =
      at::logical_and(mask.to(at::kCPU), at::eye(n, at::TensorOptions().dtype(at::kBool)).logical_not());
  const auto pairs = static_cast<double>(off_diagonal.sum().item<int64_t>());
  const auto rows = off_diagonal.sum(-1).to(at::kDouble);  // r_i
  if (pairs == 0) {
    const auto nan = at::full(members.mean.sizes().slice(0, members.mean.dim() - 1),
                              std::numeric_limits<double>::quiet_NaN(), at::kDouble);
    return {nan, nan.clone()};
  }
  // A member without pairs adds nothing (not NaN x 0).
  const auto weighted = [&](const at::Tensor& x) { return at::where(rows > 0, x * rows, at::zeros({}, x.options())); };
  const auto mean = weighted(members.mean.to(at::kDouble)).sum(-1) / pairs;
  const auto sd = weighted(members.sd.to(at::kDouble).pow(2)).sum(-1).sqrt() / pairs;
  return {mean, sd};
}

}  // namespace coupling
