// The paired probe bootstrap (coupling/engine/probe_bootstrap.h): the resamples and an interval
// pinned to what the Python reader (coupling.intervals, tests/python/test_intervals.py) gives for
// the same seed; analytic cases (two probes, constant values, a constant shift between steps).
#include "coupling/engine/probe_bootstrap.h"
#include "coupling/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace {

using coupling::ProbeBootstrap;

TEST(ProbeBootstrap, DrawsThePinnedResamples) {
  // Also pinned in tests/python/test_intervals.py: both languages draw these.
  const ProbeBootstrap bootstrap(7, 2);
  const std::vector<std::vector<int64_t>> expected = {{6, 1, 1, 2, 2, 0, 0}, {1, 4, 6, 1, 3, 6, 1}};
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = 0; i < 7; ++i) EXPECT_EQ(bootstrap.index(b, i), expected[b][i]) << b << "," << i;
  }
}

TEST(ProbeBootstrap, GivesThePythonReadersInterval) {
  const auto interval = ProbeBootstrap(5).interval({0.1, 0.5, 0.3, 0.9, 0.2});
  // Sums in another order than numpy: a few ulp of the values.
  EXPECT_NEAR(interval.mean, 0.4, 1e-15);
  EXPECT_NEAR(interval.low, 0.18, 1e-15);
  EXPECT_NEAR(interval.high, 0.68, 1e-15);
}

TEST(ProbeBootstrap, TwoProbesSpanBothValues) {
  // Resample means of {0, 1} are 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and 97.5%
  // quantiles of 2000 draws are 0 and 1 unless fewer than 50 draws fall on an end (about 1e-60).
  const auto interval = ProbeBootstrap(2).interval({0.0, 1.0});
  EXPECT_EQ(interval.mean, 0.5);
  EXPECT_EQ(interval.low, 0.0);
  EXPECT_EQ(interval.high, 1.0);
}

TEST(ProbeBootstrap, ConstantValuesGiveAPointInterval) {
  const auto interval = ProbeBootstrap(4).interval({0.25, 0.25, 0.25, 0.25});
  EXPECT_EQ(interval.low, 0.25);
  EXPECT_EQ(interval.high, 0.25);
  EXPECT_FALSE(interval.excludes(0.25));
  EXPECT_TRUE(interval.excludes(0.3));
}

TEST(ProbeBootstrap, PairsTheProbesOfTwoSteps) {
  // Probes that differ widely, shifted by 0.125 between the steps: each step's interval is wide,
  // the paired change is exactly the shift, so the steps differ.
  const std::vector<double> before = {0.1, 0.9, 0.4, 0.7, 0.2, 0.6};
  std::vector<double> after = before;
  for (auto& value : after) value += 0.125;
  const ProbeBootstrap bootstrap(6);
  const auto a = bootstrap.interval(before), b = bootstrap.interval(after);
  EXPECT_FALSE(a.excludes(b.mean));
  const auto change = bootstrap.difference(before, after);
  EXPECT_NEAR(change.low, 0.125, 1e-15);
  EXPECT_NEAR(change.high, 0.125, 1e-15);
  EXPECT_TRUE(change.excludes(0.0));
}

TEST(ProbeBootstrap, SaysNothingWithoutTwoFiniteProbes) {
  const auto single = ProbeBootstrap(1).interval({0.5});
  EXPECT_EQ(single.mean, 0.5);
  EXPECT_TRUE(std::isnan(single.low) && std::isnan(single.high));
  const auto diverged = ProbeBootstrap(3).interval({0.5, std::nan(""), 0.25});
  EXPECT_TRUE(std::isnan(diverged.mean) && std::isnan(diverged.low) && std::isnan(diverged.high));
  EXPECT_FALSE(diverged.excludes(0.0));
}

TEST(ProbeBootstrap, RefusesAWrongCount) {
  EXPECT_THROW(ProbeBootstrap(3).interval({0.5, 0.25}), coupling::Error);
  EXPECT_THROW(ProbeBootstrap(2).difference({0.5, 0.25}, {0.5}), coupling::Error);
  EXPECT_THROW(ProbeBootstrap(0), coupling::Error);
  EXPECT_THROW(ProbeBootstrap(2).interval({0.5, 0.25}, 1.0), coupling::Error);
}

}  // namespace
