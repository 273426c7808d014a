#include "coupling/engine/coupling_null.h"

#include "coupling/engine/coupling_metric.h"
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

/// What a projection U^T diag(sigma) V needs of each draw when sigma = tau on every coordinate
/// past the first Kmax: C = U^T V [draws, Kmax, Kmax] and the first Kmax rows of U and V.
struct NullDraws {
  at::Tensor cross, u_top, v_top;
};

/// The draws for (d, Kmax, draws, seed), made once per process: they are a fixed part of the
/// null's definition, small (3 x draws x Kmax^2 doubles) and slow to make at large d (QR of
/// d x Kmax matrices), so every later measurement of the same shape reuses them.
NullDraws null_draws(int64_t d, int64_t k_max, const NullOptions& options) {
  static std::mutex mutex;
  static std::map<std::tuple<int64_t, int64_t, int64_t, uint64_t>, NullDraws> made;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(d, k_max, options.draws, options.seed);
  if (const auto found = made.find(key); found != made.end()) return found->second;
  auto generator = at::detail::createCPUGenerator(options.seed);
  const auto u = haar_frames(options.draws, d, k_max, generator);
  const auto v = haar_frames(options.draws, d, k_max, generator);
  NullDraws draws{at::matmul(u.transpose(-2, -1), v), u.narrow(1, 0, k_max).contiguous(),
                  v.narrow(1, 0, k_max).contiguous()};
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
  const NullDraws draws = null_draws(d, k_max, options);

  // M = U^T diag(sigma) V = tau U^T V + U_top^T diag(s - tau) V_top, per Jacobian and draw,
  // a few Jacobians at a time (about 64 MiB of projections).
  const int64_t count = s.size(0);
  const int64_t chunk = std::max<int64_t>(1, (int64_t{64} << 20) / (8 * options.draws * k_max * k_max));
  std::vector<at::Tensor> values;
  for (int64_t b0 = 0; b0 < count; b0 += chunk) {
    const int64_t bc = std::min(chunk, count - b0);
    const auto sb = s.narrow(0, b0, bc), taub = tau.narrow(0, b0, bc);
    const auto scaled = (sb - taub.unsqueeze(-1)).view({bc, 1, k_max, 1}) * draws.u_top.unsqueeze(0);
    const auto projected = taub.view({bc, 1, 1, 1}) * draws.cross.unsqueeze(0) +
                           at::matmul(scaled.transpose(-2, -1), draws.v_top.unsqueeze(0));  // [bc, R, Kmax, Kmax]
    values.push_back(coupling_values(projected, sb, k_grid));                               // [bc, 2, nK, R]
  }
  const auto all = at::cat(values);
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
