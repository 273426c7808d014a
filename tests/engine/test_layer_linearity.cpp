// Layer linearity against a brute-force least squares of its definition (centre, scale to unit
// Frobenius norm, solve for A, 1 - residual), on analytic cases (an affine map is 1) and at the
// token count where it becomes defined.
#include "coupling/engine/layer_linearity.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

/// The definition, literally: float64 least squares of unit-norm centred Y on unit-norm centred X.
double brute_force(const at::Tensor& x, const at::Tensor& y) {
  const auto unit = [](const at::Tensor& t) {
    const auto c = t.to(at::kDouble) - t.to(at::kDouble).mean(0, true);
    return c / c.norm();
  };
  const auto xs = unit(x), ys = unit(y);
  const auto a = std::get<0>(at::linalg_lstsq(xs, ys, c10::nullopt, std::string("gelsd")));
  return 1 - (at::matmul(xs, a) - ys).pow(2).sum().item<double>();
}

/// States [P, T, 3, d]: X^0 random, X^1 an affine map of it, X^2 a nonlinear one.
at::Tensor states(int64_t probes, int64_t tokens, int64_t d) {
  const auto x0 = at::randn({probes, tokens, d}, at::kDouble);
  const auto x1 = at::matmul(x0, at::randn({d, d}, at::kDouble)) + at::randn({d}, at::kDouble);
  const auto x2 = at::tanh(at::matmul(x1, at::randn({d, d}, at::kDouble))).pow(2);
  return at::stack({x0, x1, x2}, 2).to(at::kFloat);
}

TEST(LayerLinearity, EqualsTheLeastSquaresDefinition) {
  at::manual_seed(0);
  const int64_t d = 16;
  const auto s = states(4, 12, d);  // N = 48 tokens
  const auto value = coupling::layer_linearity(s);
  ASSERT_EQ(value.size(0), 2);
  const auto flat = [&](int64_t state) { return s.select(2, state).reshape({-1, d}); };
  EXPECT_NEAR(value[0].item<double>(), 1.0, 1e-9);  // affine: exactly linear (float32 states)
  EXPECT_NEAR(value[0].item<double>(), brute_force(flat(0), flat(1)), 1e-9);
  const double nonlinear = brute_force(flat(1), flat(2));
  EXPECT_LT(nonlinear, 0.99);
  EXPECT_NEAR(value[1].item<double>(), nonlinear, 1e-9);
}

TEST(LayerLinearity, RankDeficientStatesTakeTheSvdPathAndStillEqualTheDefinition) {
  // X^1 repeats a coordinate of X^0's image (rank d - 1 after centring): the Gram matrix is
  // singular, and the least squares has many solutions with one residual.
  at::manual_seed(3);
  const int64_t d = 12;
  auto s = states(3, 10, d).to(at::kDouble);
  s.select(2, 1).select(-1, d - 1).copy_(s.select(2, 1).select(-1, 0));
  const auto value = coupling::layer_linearity(s);
  const auto flat = [&](int64_t state) { return s.select(2, state).reshape({-1, d}); };
  EXPECT_NEAR(value[1].item<double>(), brute_force(flat(1), flat(2)), 1e-9);
  EXPECT_NEAR(value[0].item<double>(), brute_force(flat(0), flat(1)), 1e-9);
}

TEST(LayerLinearity, IgnoresScaleAndShift) {
  at::manual_seed(1);
  const auto s = states(3, 8, 8).to(at::kDouble);  // float64 throughout: only round-off differs
  auto moved = s.clone();
  moved.select(2, 2).mul_(7.5).add_(3.0);
  EXPECT_NEAR(coupling::layer_linearity(moved)[1].item<double>(), coupling::layer_linearity(s)[1].item<double>(),
              1e-12);
}

TEST(LayerLinearity, IsNaNBelowDPlusOneTokens) {
  at::manual_seed(2);
  const int64_t d = 8;
  EXPECT_TRUE(at::isnan(coupling::layer_linearity(states(1, d, d))).all().item<bool>());  // N = d
  const auto defined = coupling::layer_linearity(states(1, d + 1, d));                    // N = d + 1
  EXPECT_TRUE(at::isfinite(defined).all().item<bool>());
  EXPECT_EQ(coupling::linearity_min_tokens(d), d + 1);
}

}  // namespace
