// One rank of the 2-process communicator tests (tests/cli/communicator.sh): connects through the
// launcher environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), runs each collective and
// checks its result. Prints "rank R ok" and exits 0, or prints the error and exits 2.
//   dist_worker [TIMEOUT_MS] [peer-exits]     (peer-exits: rank 1 leaves right after connecting)
#include "coupling/communicator.h"

#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  try {
    const auto env = coupling::resolve_dist_env();
    coupling::CommunicatorOptions options;
    if (argc > 1) options.timeout = std::chrono::milliseconds(std::stoll(argv[1]));
    auto comm = coupling::Communicator::connect(env, options);
    if (argc > 2 && std::string(argv[2]) == "peer-exits" && comm.rank() == 1) {
      std::printf("rank 1 leaving\n");
      std::_Exit(0);  // vanish without closing anything, like a crash
    }
    const auto r = static_cast<double>(comm.rank());
    std::vector<at::Tensor> sum{at::full({3}, r + 1.0)};
    comm.all_reduce_sum(sum, "a test vector");
    const double expected = comm.world_size() * (comm.world_size() + 1) / 2.0;
    if (!at::allclose(sum[0], at::full({3}, expected))) throw std::runtime_error("all-reduce gave a wrong sum");
    std::vector<at::Tensor> shared{at::full({2}, r)};
    comm.broadcast(shared, 0, "rank 0's vector");
    if (!at::equal(shared[0], at::zeros({2}))) throw std::runtime_error("broadcast did not copy rank 0's data");
    const auto gathered = comm.all_gather(at::full({1}, r * 10.0), "one value per rank");
    for (int64_t i = 0; i < comm.world_size(); ++i) {
      if (gathered[static_cast<size_t>(i)].item<double>() != 10.0 * static_cast<double>(i)) {
        throw std::runtime_error("all-gather out of rank order");
      }
    }
    comm.barrier("the end of the test");
    std::printf("rank %lld ok\n", static_cast<long long>(comm.rank()));
    return 0;
  } catch (const std::exception& e) {
    std::printf("rank error: %s\n", e.what());
    return 2;
  }
}
