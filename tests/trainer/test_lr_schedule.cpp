// The learning-rate schedule: linear warm-up, cosine decay to the floor, exact endpoints.
#include "trainer/loop/lr_schedule.h"

#include <gtest/gtest.h>

namespace {

TEST(LrSchedule, WarmupThenCosineToFloor) {
  const trainer::LrSchedule schedule{1.0, 0.1, 10, 110};
  EXPECT_DOUBLE_EQ(schedule.at(0), 0.1);
  EXPECT_DOUBLE_EQ(schedule.at(9), 1.0);
  EXPECT_DOUBLE_EQ(schedule.at(10), 1.0);
  EXPECT_NEAR(schedule.at(60), 0.55, 1e-12);  // halfway through the decay
  EXPECT_NEAR(schedule.at(110), 0.1, 1e-12);
  EXPECT_NEAR(schedule.at(500), 0.1, 1e-12);  // stays at the floor
  for (int64_t s = 10; s < 110; ++s) EXPECT_GE(schedule.at(s), schedule.at(s + 1));
}

TEST(LrSchedule, NoWarmup) {
  const trainer::LrSchedule schedule{2.0, 0.0, 0, 4};
  EXPECT_DOUBLE_EQ(schedule.at(0), 2.0);
  EXPECT_NEAR(schedule.at(2), 1.0, 1e-12);
  EXPECT_NEAR(schedule.at(4), 0.0, 1e-12);
}

}  // namespace
