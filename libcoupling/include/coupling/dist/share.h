// How items (probes, evaluation batches) split over the ranks of a job: contiguous shares in rank
// order, the same on every rank, so that gathering the shares in rank order restores the whole.
#pragma once

#include <cstdint>

namespace coupling {

class Communicator;

/// The contiguous share [begin, end) of `count` items that rank `rank` of `ranks` takes: shares
/// of ceil(count / ranks) items, in rank order (the last ones may be shorter or empty).
struct Share {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
Share contiguous_share(int64_t count, int64_t rank, int64_t ranks);
/// This process's share (all of it without a communicator).
Share contiguous_share(int64_t count, const Communicator* communicator);

}  // namespace coupling
