// Top-K spectra: exact SVD on a matrix with a known SVD, and the randomized estimator against
// exact for several (p, q), with its error decreasing in q; consistent pairing of u_k and v_k.
#include "coupling/engine/spectrum.h"
#include "coupling/error.h"
#include "engine_support.h"

#include <gtest/gtest.h>

#include <cmath>

namespace {

/// A = U diag(s) V^T with s_k = decay^k and random orthogonal U, V.
at::Tensor matrix_with_spectrum(int64_t d, double decay, at::Generator& g, at::Tensor* u = nullptr,
                                at::Tensor* v = nullptr, at::Tensor* s = nullptr) {
  auto uu = engine_support::random_orthogonal(d, g), vv = engine_support::random_orthogonal(d, g);
  auto ss = at::pow(at::full({d}, decay, at::kDouble), at::arange(d, at::kDouble)).to(at::kFloat);
  if (u) *u = uu;
  if (v) *v = vv;
  if (s) *s = ss;
  return at::matmul(uu * ss, vv.t());
}

TEST(Spectrum, ExactRecoversAKnownSvd) {
  auto g = at::detail::createCPUGenerator(1);
  at::Tensor u, v, s;
  const auto a = matrix_with_spectrum(12, 0.8, g, &u, &v, &s);
  for (auto precision : {coupling::SvdPrecision::kFloat32, coupling::SvdPrecision::kFloat64}) {
    const auto top = coupling::exact_topk(a, 5, precision);
    EXPECT_TRUE(at::allclose(top.s, s.narrow(0, 0, 5), 1e-5, 1e-6));
    // Columns equal up to a shared sign per pair: |u_k . U_k| = 1 and u_k^T A v_k = s_k.
    EXPECT_TRUE(at::allclose((top.u * u.narrow(1, 0, 5)).sum(0).abs(), at::ones({5}), 1e-4, 1e-5));
    EXPECT_TRUE(at::allclose((top.u * at::matmul(a, top.v)).sum(0), top.s, 1e-4, 1e-5));
  }
  EXPECT_THROW(coupling::exact_topk(a, 13), coupling::ConfigError);
}

TEST(Spectrum, RandomizedMatchesExactAndImprovesWithPowerIterations) {
  auto g = at::detail::createCPUGenerator(2);
  // Slow decay: the hard case where power iterations matter. A batch of three matrices.
  const auto a = at::stack(
      {matrix_with_spectrum(64, 0.97, g), matrix_with_spectrum(64, 0.97, g), matrix_with_spectrum(64, 0.9, g)});
  const auto exact = coupling::exact_topk(a, 10);
  double previous_error = 1e9;
  for (int64_t q : {0, 1, 3, 6}) {
    coupling::RandomizedOptions options;
    options.oversample = 10;
    options.power_iterations = q;
    const auto approx = coupling::randomized_topk(coupling::dense_operator(a), 10, options);
    const double error = ((approx.s - exact.s).abs() / exact.s).max().item<double>();
    EXPECT_LT(error, previous_error + 1e-6) << "q=" << q;
    previous_error = error;
    // Pairing: u_k^T A v_k = s_k for the randomized factors themselves.
    const auto paired = (approx.u * at::matmul(a, approx.v)).sum(-2);
    EXPECT_TRUE(at::allclose(paired, approx.s, 1e-3, 1e-4)) << "q=" << q;
  }
  EXPECT_LT(previous_error, 2e-3);  // q = 6: singular values within 0.2 %
}

TEST(Spectrum, RandomizedWithOversamplingOnFastDecay) {
  auto g = at::detail::createCPUGenerator(3);
  const auto a = matrix_with_spectrum(48, 0.6, g);
  const auto exact = coupling::exact_topk(a, 8);
  for (int64_t p : {5, 10, 20}) {
    coupling::RandomizedOptions options;
    options.oversample = p;
    options.power_iterations = 2;
    const auto approx = coupling::randomized_topk(coupling::dense_operator(a), 8, options);
    EXPECT_LT(((approx.s - exact.s).abs() / exact.s).max().item<double>(), 1e-4) << "p=" << p;
  }
}

}  // namespace
