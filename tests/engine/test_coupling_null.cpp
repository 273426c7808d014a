// The uncoupled null of m_K against a brute-force Monte Carlo of its definition (a Jacobian J
// against independent Haar-random bases, m_K computed from U^T J V with J itself), an analytic
// rank-one case, and the pooling of member nulls into the null of a mean over pairs. Tolerances
// are Monte Carlo standard errors: the draws are seeded, so the outcome is fixed, and 4 standard
// errors is where an honest estimator would fail once in 16 000 seeds.
#include "coupling/engine/coupling_metric.h"
#include "coupling/engine/coupling_null.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

/// Haar frames [draws, d, k] built another way than the library's (QR): the polar factor
/// G (G^T G)^(-1/2) of a Gaussian G is Haar-distributed too.
at::Tensor polar_frames(int64_t draws, int64_t d, int64_t k, at::Generator& generator) {
  const auto g = at::randn({draws, d, k}, generator, at::TensorOptions().dtype(at::kDouble));
  const auto [values, vectors] = at::linalg_eigh(at::matmul(g.transpose(-2, -1), g));
  const auto inverse_root = at::matmul(vectors * values.rsqrt().unsqueeze(-2), vectors.transpose(-2, -1));
  return at::matmul(g, inverse_root);
}

/// m_K ("norm") of J against each basis pair, straight from the definition: [draws].
at::Tensor brute_force_m(const at::Tensor& j, const at::Tensor& s, const at::Tensor& u, const at::Tensor& v,
                         int64_t k) {
  const auto m = at::matmul(at::matmul(u.narrow(-1, 0, k).transpose(-2, -1), j), v.narrow(-1, 0, k));
  const auto sk = s.narrow(0, 0, k);
  return (m.abs() - at::diag(sk)).pow(2).sum({-2, -1}).sqrt() / sk.norm();
}

struct Spectrum {
  at::Tensor jacobian, top, frobenius;
};

/// J = A diag(sigma) B^T with random orthogonal A, B: the top values `top`, then `tail` on the
/// remaining d - Kmax coordinates (flat, as the null assumes: the null is then exact).
Spectrum spectrum(int64_t d, const std::vector<double>& top, double tail, at::Generator& generator) {
  auto sigma = at::full({d}, tail, at::kDouble);
  const auto s = at::tensor(top, at::kDouble);
  sigma.narrow(0, 0, s.size(0)).copy_(s);
  const auto a = polar_frames(1, d, d, generator).select(0, 0), b = polar_frames(1, d, d, generator).select(0, 0);
  const auto j = at::matmul(a * sigma.unsqueeze(0), b.transpose(0, 1));
  return {j, s, sigma.norm().reshape({})};
}

TEST(CouplingNull, MatchesABruteForceMonteCarloOfItsDefinition) {
  auto generator = at::detail::createCPUGenerator(7);
  const int64_t d = 24, brute_draws = 4000;
  const auto sp = spectrum(d, {5.0, 3.0, 2.0, 1.5, 1.2, 1.0}, 0.4, generator);
  const std::vector<int64_t> k_grid{2, 6};
  coupling::NullOptions many;
  many.draws = 2000;
  const auto null = coupling::coupling_null(sp.top, sp.frobenius, d, k_grid, many);  // [2, nK]
  const auto defaults = coupling::coupling_null(sp.top, sp.frobenius, d, k_grid);
  const auto u = polar_frames(brute_draws, d, 6, generator), v = polar_frames(brute_draws, d, 6, generator);
  for (size_t ki = 0; ki < k_grid.size(); ++ki) {
    const int64_t k = k_grid[ki];
    // Both orientations have the null's law: ujv U^T J V, vju V^T J U (= U'^T J V' with the roles swapped).
    for (const auto& m : {brute_force_m(sp.jacobian, sp.top, u, v, k), brute_force_m(sp.jacobian, sp.top, v, u, k)}) {
      const double mean = m.mean().item<double>(), sd = m.std().item<double>();
      const double mean_error = sd * std::sqrt(1.0 / many.draws + 1.0 / brute_draws);
      const double sd_error = sd * std::sqrt(0.5 / many.draws + 0.5 / brute_draws);
      EXPECT_NEAR(null.mean[0][ki].item<double>(), mean, 4 * mean_error) << "K = " << k;
      EXPECT_NEAR(null.sd[0][ki].item<double>(), sd, 4 * sd_error) << "K = " << k;
      // The default 64 draws: their Monte Carlo error is sd / 8 in the mean.
      EXPECT_NEAR(defaults.mean[0][ki].item<double>(), mean, 4 * sd * std::sqrt(1.0 / 64 + 1.0 / brute_draws));
      // "trace" is "norm" rescaled by ||S_K|| / trace(S_K), draw by draw.
      const auto sk = sp.top.narrow(0, 0, k);
      const double scale = (sk.norm() / sk.sum()).item<double>();
      EXPECT_NEAR(null.mean[1][ki].item<double>(), null.mean[0][ki].item<double>() * scale, 1e-12);
      EXPECT_NEAR(null.sd[1][ki].item<double>(), null.sd[0][ki].item<double>() * scale, 1e-12);
    }
  }
}

TEST(CouplingNull, RankOneJacobianHasItsAnalyticNull) {
  // J = s a b^T, K = 1: m_1 = 1 - |u.a| |v.b| with u, v uniform on the sphere, so E m = 1 - c^2 and
  // Var m = 1/d^2 - c^4, c = E|x_1| = Gamma(d/2) / (sqrt(pi) Gamma((d + 1)/2)).
  const int64_t d = 16;
  const double c = std::exp(std::lgamma(d / 2.0) - std::lgamma((d + 1) / 2.0)) / std::sqrt(M_PI);
  const double mean = 1 - c * c, sd = std::sqrt(1.0 / (d * d) - std::pow(c, 4));
  coupling::NullOptions options;
  options.draws = 4000;
  const auto null =
      coupling::coupling_null(at::full({1}, 2.0, at::kDouble), at::full({}, 2.0, at::kDouble), d, {1}, options);
  EXPECT_NEAR(null.mean[0][0].item<double>(), mean, 4 * sd / std::sqrt(4000.0));
  EXPECT_NEAR(null.sd[0][0].item<double>(), sd, 4 * sd * std::sqrt(0.5 / 4000));
}

TEST(CouplingNull, IsTheSameForEveryCallAndBatchLayout) {
  // Common random numbers: one Jacobian's null does not depend on what else is in the call.
  auto generator = at::detail::createCPUGenerator(3);
  const auto sorted = at::rand({3, 8}, generator, at::TensorOptions().dtype(at::kDouble)).sort(-1, true);
  const auto s = std::get<0>(sorted) + 1;
  const auto f = s.norm(2, -1) * 1.5;
  const auto together = coupling::coupling_null(s, f, 32, {4, 8});
  const auto alone = coupling::coupling_null(s.narrow(0, 1, 1), f.narrow(0, 1, 1), 32, {4, 8});
  // The same draws and arithmetic; a BLAS may block a GEMM of another size differently (round-off).
  EXPECT_TRUE(at::allclose(together.mean.narrow(0, 1, 1), alone.mean, 1e-12, 1e-14));
  EXPECT_TRUE(at::allclose(together.sd.narrow(0, 1, 1), alone.sd, 1e-12, 1e-14));
}

TEST(CouplingNull, PoolsMembersOverThePairsOfAMask) {
  // Adjacent pairs of 3 members: rows have 1, 2, 1 pairs (4 in all).
  const coupling::CouplingNull members{at::tensor({1.0, 2.0, 3.0}, at::kDouble),
                                       at::tensor({0.1, 0.2, 0.3}, at::kDouble)};
  const auto index = at::arange(3, at::kLong);
  const auto pooled = coupling::null_over_pairs(members, (index.unsqueeze(0) - index.unsqueeze(1)).abs().eq(1));
  EXPECT_NEAR(pooled.mean.item<double>(), (1.0 + 2 * 2.0 + 3.0) / 4, 1e-15);
  EXPECT_NEAR(pooled.sd.item<double>(), std::sqrt(0.01 + 2 * 0.04 + 0.09) / 4, 1e-15);
  const auto none = coupling::null_over_pairs(members, at::eye(3, at::kBool));  // the diagonal only: no pair
  EXPECT_TRUE(std::isnan(none.mean.item<double>()));
  EXPECT_TRUE(std::isnan(none.sd.item<double>()));
}

}  // namespace
