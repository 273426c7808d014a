// The coupling metric: a hand-computed 3x3 example for both normalisations, sign invariance,
// vju = ujv for symmetric Jacobians, and the batched matrices against the one-pair reference.
#include "coupling/engine/coupling_metric.h"
#include "coupling/engine/spectrum.h"
#include "engine_support.h"

#include <gtest/gtest.h>

#include <cmath>

namespace {

using coupling::Normalisation;
using coupling::Orientation;

TEST(CouplingMetric, HandComputedThreeByThree) {
  // J2 = diag(3, 2, 1): U2 = V2 = I. J1 = [[0, 2, 0], [1, 0, 0], [0, 0, 0.5]]: singular values
  // (2, 1, 0.5). With K = 3, M = J1, |M| - S1 = [[-2, 2, 0], [1, -1, 0], [0, 0, 0]]: ||.||_F = sqrt(10).
  const auto j1 = at::tensor({0.0, 2.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5}, at::kFloat).view({3, 3});
  const auto j2 = at::diag(at::tensor({3.0, 2.0, 1.0}, at::kFloat));
  const auto f2 = coupling::exact_topk(j2, 3);
  const auto s1 = coupling::exact_topk(j1, 3).s;
  EXPECT_NEAR(coupling::coupling_pair(j1, s1, f2, 3, Orientation::kUJV, Normalisation::kNorm), std::sqrt(10.0 / 5.25),
              1e-6);
  EXPECT_NEAR(coupling::coupling_pair(j1, s1, f2, 3, Orientation::kUJV, Normalisation::kTrace), std::sqrt(10.0) / 3.5,
              1e-6);
  // K = 2: M = [[0, 2], [1, 0]], S1 = diag(2, 1): the same residual, smaller normalisers.
  EXPECT_NEAR(coupling::coupling_pair(j1, s1, f2, 2, Orientation::kUJV, Normalisation::kNorm), std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(coupling::coupling_pair(j1, s1, f2, 2, Orientation::kUJV, Normalisation::kTrace), std::sqrt(10.0) / 3.0,
              1e-6);
  // A Jacobian is perfectly coupled with itself.
  EXPECT_NEAR(coupling::coupling_pair(j1, s1, coupling::exact_topk(j1, 3), 3, Orientation::kUJV, Normalisation::kNorm),
              0.0, 1e-6);
}

TEST(CouplingMetric, InvariantToSignFlipsOfSingularPairs) {
  auto g = at::detail::createCPUGenerator(5);
  const auto j1 = at::randn({10, 10}, g, at::TensorOptions());
  const auto j2 = at::randn({10, 10}, g, at::TensorOptions());
  const auto f2 = coupling::exact_topk(j2, 6);
  const auto signs = at::tensor({1.0, -1.0, -1.0, 1.0, -1.0, 1.0}, at::kFloat);
  const coupling::TopK flipped{f2.u * signs, f2.s, f2.v * signs};
  const auto s1 = coupling::exact_topk(j1, 6).s;
  for (auto o : {Orientation::kUJV, Orientation::kVJU}) {
    const double a = coupling::coupling_pair(j1, s1, f2, 6, o, Normalisation::kNorm);
    EXPECT_NEAR(a, coupling::coupling_pair(j1, s1, flipped, 6, o, Normalisation::kNorm), 1e-9);
    EXPECT_GT(a, 0.1);  // random matrices are far from coupled
  }
}

TEST(CouplingMetric, VjuEqualsUjvForSymmetricJacobians) {
  auto g = at::detail::createCPUGenerator(6);
  auto a = at::randn({8, 8}, g, at::TensorOptions());
  auto b = at::randn({8, 8}, g, at::TensorOptions());
  a = a + a.t();
  b = b + b.t();
  const auto fa = coupling::exact_topk(a, 8), fb = coupling::exact_topk(b, 8);
  for (int64_t k : {3, 8}) {
    EXPECT_NEAR(coupling::coupling_pair(a, fa.s, fb, k, Orientation::kUJV, Normalisation::kTrace),
                coupling::coupling_pair(a, fa.s, fb, k, Orientation::kVJU, Normalisation::kTrace), 1e-5);
  }
  // Non-symmetric Jacobians tell them apart.
  const auto c = at::randn({8, 8}, g, at::TensorOptions());
  const auto e = at::randn({8, 8}, g, at::TensorOptions());
  const auto sc = coupling::exact_topk(c, 8).s;
  const auto fe = coupling::exact_topk(e, 8);
  EXPECT_GT(std::abs(coupling::coupling_pair(c, sc, fe, 8, Orientation::kUJV, Normalisation::kNorm) -
                     coupling::coupling_pair(c, sc, fe, 8, Orientation::kVJU, Normalisation::kNorm)),
            1e-3);
}

TEST(CouplingMetric, BatchedMatricesMatchThePairReference) {
  auto g = at::detail::createCPUGenerator(7);
  const auto jacobians = at::randn({2, 4, 9, 9}, g, at::TensorOptions());  // 2 sets of N = 4
  const auto factors = coupling::exact_topk(jacobians, 6);
  const std::vector<int64_t> ks = {2, 6};
  const auto m = coupling::coupling_matrices(jacobians, factors, ks);
  ASSERT_EQ(m.sizes(), (at::IntArrayRef{2, 2, 2, 2, 4, 4}));
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = 0; i < 4; ++i) {
      for (int64_t j = 0; j < 4; ++j) {
        const coupling::TopK fj{factors.u[b][j], factors.s[b][j], factors.v[b][j]};
        for (int64_t o = 0; o < 2; ++o) {
          for (int64_t nrm = 0; nrm < 2; ++nrm) {
            for (size_t k = 0; k < ks.size(); ++k) {
              const double expected =
                  coupling::coupling_pair(jacobians[b][i], factors.s[b][i], fj, ks[k], static_cast<Orientation>(o),
                                          static_cast<Normalisation>(nrm));
              EXPECT_NEAR(m[b][o][nrm][static_cast<int64_t>(k)][i][j].item<double>(), expected, 1e-5 * (1 + expected));
            }
          }
        }
      }
    }
  }
  // ujv diagonal (a Jacobian in its own singular basis) is 0; vju's is not.
  EXPECT_LT(m.select(1, 0).diagonal(0, -2, -1).abs().max().item<double>(), 1e-5);
  EXPECT_GT(m.select(1, 1).diagonal(0, -2, -1).abs().min().item<double>(), 1e-2);
}

TEST(CouplingMetric, Summaries) {
  const auto m = at::tensor({0.0, 1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0, 0.0}, at::kDouble).view({3, 3});
  EXPECT_DOUBLE_EQ(coupling::mean_off_diagonal(m).item<double>(), (1 + 2 + 3 + 4 + 5 + 6) / 6.0);
  EXPECT_DOUBLE_EQ(coupling::mean_adjacent(m).item<double>(), (1 + 3 + 4 + 6) / 4.0);
  EXPECT_TRUE(std::isnan(coupling::mean_adjacent(at::zeros({1, 1}, at::kDouble)).item<double>()));
}

}  // namespace
