#include "coupling/dist/share.h"

#include "coupling/dist/communicator.h"

#include <algorithm>

namespace coupling {

Share contiguous_share(int64_t count, int64_t rank, int64_t ranks) {
  const int64_t size = (count + ranks - 1) / ranks;
  const int64_t begin = std::min(count, rank * size);
  return {begin, std::min(count, begin + size)};
}

Share contiguous_share(int64_t count, const Communicator* communicator) {
  return communicator ? contiguous_share(count, communicator->rank(), communicator->world_size()) : Share{0, count};
}

}  // namespace coupling
