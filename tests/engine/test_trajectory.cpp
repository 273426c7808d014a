// Trajectory metrics on analytic paths: straight lines, a known zig-zag, geometric norms and
// equispaced steps; the line fit and CV helpers; the 1/s_1 depth fit.
#include "coupling/engine/trajectory.h"
#include "coupling/error.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace {

TEST(Trajectory, StraightLineHasLssOne) {
  const auto direction = at::randn({16});
  const auto lengths = at::tensor({0.0, 1.0, 3.0, 3.5, 7.0, 20.0}, at::kFloat);  // uneven steps, same direction
  const auto states = at::randn({16}).unsqueeze(0) + lengths.unsqueeze(1) * direction.unsqueeze(0);
  EXPECT_NEAR(coupling::trajectory_metrics(states).line_shape_score, 1.0, 1e-6);
}

TEST(Trajectory, ZigZagHasKnownLss) {
  // Steps (1, 1), (1, -1), (1, 1), (1, -1): unit steps sum to (4/sqrt2, 0), so LSS = 4 / (2 sqrt2) = sqrt2.
  const auto states = at::tensor({0.0, 0.0, 1.0, 1.0, 2.0, 0.0, 3.0, 1.0, 4.0, 0.0}, at::kDouble).view({5, 2});
  const auto m = coupling::trajectory_metrics(states);
  EXPECT_NEAR(m.line_shape_score, std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(m.step_cv, 0.0, 1e-12);  // equal step lengths
  // Doubling one step's length changes nothing: LSS only sees directions.
  const auto stretched = at::tensor({0.0, 0.0, 2.0, 2.0, 3.0, 1.0, 4.0, 2.0, 5.0, 1.0}, at::kDouble).view({5, 2});
  EXPECT_NEAR(coupling::trajectory_metrics(stretched).line_shape_score, std::sqrt(2.0), 1e-12);
}

TEST(Trajectory, GeometricNormsGiveLogRateWithPerfectFit) {
  const double c = 0.7, r = 1.6;
  std::vector<double> values;
  for (int l = 0; l <= 6; ++l) values.push_back(c * std::pow(r, l));
  auto states = at::zeros({7, 3}, at::kDouble);
  states.select(1, 0).copy_(at::tensor(values, at::kDouble));
  const auto m = coupling::trajectory_metrics(states);
  EXPECT_NEAR(m.log_norm_fit.slope, std::log(r), 1e-12);
  EXPECT_NEAR(m.log_norm_fit.intercept, std::log(c), 1e-12);
  EXPECT_NEAR(m.log_norm_fit.r2, 1.0, 1e-12);
  EXPECT_NEAR(m.norm_growth, r, 1e-12);
  // Steps c r^{l-1} (r - 1) are geometric: constant ratio, log-step slope log r.
  EXPECT_NEAR(m.step_ratio_cv, 0.0, 1e-12);
  EXPECT_NEAR(m.log_step_fit.slope, std::log(r), 1e-12);
  EXPECT_NEAR(m.log_step_fit.r2, 1.0, 1e-12);
  EXPECT_GT(m.step_cv, 0.1);  // but not equispaced
}

TEST(Trajectory, EquispacedStepsHaveZeroStepCv) {
  auto states = at::arange(5, at::kDouble).unsqueeze(1) * at::tensor({3.0, 4.0}, at::kDouble).unsqueeze(0);
  const auto m = coupling::trajectory_metrics(states);
  EXPECT_NEAR(m.step_cv, 0.0, 1e-12);
  EXPECT_NEAR(m.step_lengths[2], 5.0, 1e-12);
  EXPECT_NEAR(m.line_shape_score, 1.0, 1e-12);
}

TEST(Trajectory, FitAndCvHelpers) {
  const auto fit = coupling::fit_line({0, 1, 2, 3}, {1, 3, 2, 5});
  EXPECT_NEAR(fit.slope, 1.1, 1e-12);  // sxy = 5.5, sxx = 5
  EXPECT_NEAR(fit.intercept, 1.1, 1e-12);
  EXPECT_NEAR(fit.r2, 1.0 - 2.7 / 8.75, 1e-12);
  EXPECT_NEAR(coupling::coefficient_of_variation({2, 4, 4, 4, 5, 5, 7, 9}), 2.0 / 5.0, 1e-12);
  EXPECT_THROW(coupling::fit_line({1}, {1}), coupling::ConfigError);
  EXPECT_THROW(coupling::trajectory_metrics(at::zeros({1, 4})), coupling::ConfigError);
}

TEST(Trajectory, InverseSigmaFit) {
  std::vector<double> s1;
  for (int l = 1; l <= 5; ++l) s1.push_back(1.0 / (0.5 + 0.25 * l));
  const auto fit = coupling::inverse_sigma_fit(s1);
  EXPECT_NEAR(fit.slope, 0.25, 1e-12);
  EXPECT_NEAR(fit.intercept, 0.5, 1e-12);
  EXPECT_NEAR(fit.r2, 1.0, 1e-12);
}

}  // namespace
