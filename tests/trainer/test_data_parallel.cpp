// The single-process pieces of trainer/parallel/data_parallel.h: how items are shared among ranks, and
// the identity of sum_over_ranks without a communicator. (The collectives: dist.communicator.)
#include "trainer/parallel/data_parallel.h"

#include <gtest/gtest.h>

TEST(DataParallel, ContiguousSharesCoverEveryItemOnce) {
  for (int64_t count : {0, 1, 3, 8, 10}) {
    for (int64_t ranks : {1, 2, 3, 4}) {
      int64_t next = 0;
      for (int64_t r = 0; r < ranks; ++r) {
        const auto share = coupling::contiguous_share(count, r, ranks);
        EXPECT_EQ(share.begin, next) << count << " items, rank " << r << " of " << ranks;
        EXPECT_LE(share.size(), (count + ranks - 1) / ranks);
        EXPECT_GE(share.size(), 0);
        next = share.end;
      }
      EXPECT_EQ(next, count) << count << " items on " << ranks << " ranks";
    }
  }
  const auto one_probe = coupling::contiguous_share(1, 1, 2);  // a rank may get nothing
  EXPECT_EQ(one_probe.size(), 0);
  EXPECT_EQ(coupling::contiguous_share(5, nullptr).size(), 5);
}

TEST(DataParallel, SumOverRanksWithoutACommunicatorIsTheIdentity) {
  EXPECT_EQ(trainer::sum_over_ranks({1.5, -2.0}, nullptr, "values"), (std::vector<double>{1.5, -2.0}));
}
