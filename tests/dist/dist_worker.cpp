// One rank of the 2-process communicator tests (tests/cli/communicator.sh): connects through the
// launcher environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), runs each collective and
// checks its result. Prints "rank R [MODE ]ok" and exits 0, or prints the error and exits 2.
//   dist_worker [TIMEOUT_MS] [peer-exits|measure|data-parallel|user-group]
//   peer-exits: rank 1 leaves right after connecting; measure: a measurement shared across the
//   ranks must equal the single-process one; data-parallel: gradient averaging in several
//   buckets, and the checksum catching a rank whose parameters drifted; user-group: the
//   collectives through a ProcessGroupGloo the program built itself.
#include "coupling/dist/distributed_measurement.h"
#include "coupling/engine/fields.h"
#include "coupling/engine/measurement.h"
#include "trainer/loop/divergence_error.h"
#include "trainer/parallel/data_parallel.h"
#include "trainer/parallel/rendezvous.h"

#include <ATen/ATen.h>
#include <torch/version.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>

namespace {

/// A process group built by "the user" and handed in.
coupling::Communicator user_group(const trainer::DistEnv& env, const trainer::RendezvousOptions& options) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(env.master_port);
  store_options.isServer = env.rank == 0;
  store_options.numWorkers = static_cast<std::size_t>(env.world_size);
  store_options.timeout = options.timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
  gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, gloo_options);
#if TORCH_VERSION_MAJOR >= 2
  // LibTorch 2.x: Gloo is a Backend, and a user's group is a ProcessGroup that dispatches to it.
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, env.rank, env.world_size);
  group->setBackend(c10::kCPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  return coupling::Communicator::from_process_group(group);
#else
  return coupling::Communicator::from_process_group(gloo);  // LibTorch 1.13: Gloo is a ProcessGroup
#endif
}

void data_parallel_checks(coupling::Communicator& comm) {
  const double r = static_cast<double>(comm.rank());
  // Three parameters, 24 + 8 + 24 bytes, in 16-byte buckets: three all-reduces.
  std::vector<at::Tensor> params{at::zeros({6}), at::zeros({2}), at::zeros({2, 3})};
  for (auto& p : params) p.mutable_grad() = at::full(p.sizes(), r + 1.0);
  params[1].mutable_grad() = at::Tensor();  // no gradient on this rank counts as zero
  trainer::GradientAverager averager(params, comm, 16);
  if (averager.buckets() != 3) throw std::runtime_error("expected 3 gradient buckets");
  averager.average();
  const double mean = (comm.world_size() + 1) / 2.0;
  if (!at::allclose(params[0].grad(), at::full({6}, mean)) || !at::allclose(params[2].grad(), at::full({2, 3}, mean)) ||
      !at::equal(params[1].grad(), at::zeros({2}))) {
    throw std::runtime_error("averaged gradients are wrong");
  }
  trainer::check_ranks_agree(params, comm, 1);              // identical: no error
  if (comm.rank() == 1) params[2].detach()[0][0] += 1e-7f;  // one rank drifts by one ulp-ish
  try {
    trainer::check_ranks_agree(params, comm, 2);
  } catch (const trainer::DivergenceError& e) {
    if (std::string(e.what()).find("rank(s) 1 differ from rank 0's after step 2") == std::string::npos) throw;
    return;
  }
  throw std::runtime_error("the checksum missed a rank whose parameters drifted");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const auto env = trainer::resolve_dist_env();
    trainer::RendezvousOptions options;
    if (argc > 1) options.timeout = std::chrono::milliseconds(std::stoll(argv[1]));
    const std::string mode = argc > 2 ? argv[2] : "";
    auto comm = mode == "user-group" ? user_group(env, options) : trainer::connect(env, options);
    if (mode == "data-parallel") {
      data_parallel_checks(comm);
      std::printf("rank %lld data-parallel ok\n", static_cast<long long>(comm.rank()));
      return 0;
    }
    if (mode == "measure") {
      auto g = at::detail::createCPUGenerator(7);  // the same small token-mixing model on every rank
      std::vector<at::Tensor> matrices;
      for (int l = 0; l < 3; ++l) matrices.push_back(at::randn({12, 12}, g, at::TensorOptions()) * 0.3);
      coupling::LambdaAdapter adapter(
          3, /*causal=*/false,
          [&](const at::Tensor& x0) {
            std::vector<at::Tensor> states{x0};
            for (const auto& a : matrices) {
              const auto& x = states.back();
              states.push_back(x + at::matmul(at::tanh(x + x.mean(-2, true)), a.t()));
            }
            return states;
          },
          [&](int64_t l, const at::Tensor& x) {
            return at::matmul(at::tanh(x + x.mean(-2, true)), matrices[static_cast<size_t>(l)].t());
          });
      const auto probes = at::randn({3, 5, 12}, g, at::TensorOptions());
      coupling::MeasurementOptions options;
      options.k_grid = {4, 12};
      options.tokens.mode = coupling::TokenSelection::Mode::kList;
      options.tokens.tokens = {4, 2};
      options.tokens.context_pairs = {{1, 4}, {3, 2}};
      // 3 probes on 2 ranks: uneven slices. Exact and randomized (seeded per probe) spectra.
      for (auto spectrum : {coupling::SpectrumMethod::kExact, coupling::SpectrumMethod::kRandomized}) {
        options.spectrum = spectrum;
        const auto shared = coupling::measure(adapter, probes, options, comm);
        const auto local = coupling::measure(adapter, probes, options);
        for (const auto& field : coupling::measurement_fields()) {  // every field the gather carries
          const at::Tensor& a = shared.*field.member;
          const at::Tensor& b = local.*field.member;
          if (a.defined() != b.defined() || !a.defined()) {
            if (a.defined() != b.defined())
              throw std::runtime_error(std::string("field ") + field.name + " is missing");
            continue;
          }
          if (a.sizes() != b.sizes() || !at::allclose(a, b, 1e-5, 1e-6, /*equal_nan=*/true)) {
            throw std::runtime_error(std::string("shared measurement differs: ") + field.name + " by " +
                                     std::to_string((a - b).abs().max().item<double>()));
          }
        }
      }
      std::printf("rank %lld measure ok\n", static_cast<long long>(comm.rank()));
      return 0;
    }
    if (mode == "peer-exits" && comm.rank() == 1) {
      std::printf("rank 1 leaving\n");
      std::_Exit(0);  // vanish without closing anything, like a crash
    }
    const auto r = static_cast<double>(comm.rank());
    std::vector<at::Tensor> sum{at::full({3}, r + 1.0), at::full({2, 2}, 2.0 * (r + 1.0))};  // two shapes
    comm.all_reduce_sum(sum, "a test vector");
    const double expected = comm.world_size() * (comm.world_size() + 1) / 2.0;
    if (!at::allclose(sum[0], at::full({3}, expected)) || !at::allclose(sum[1], at::full({2, 2}, 2.0 * expected))) {
      throw std::runtime_error("all-reduce gave a wrong sum");
    }
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
    std::printf("rank %lld %sok\n", static_cast<long long>(comm.rank()), mode.empty() ? "" : (mode + " ").c_str());
    return 0;
  } catch (const std::exception& e) {
    std::printf("rank error: %s\n", e.what());
    return 2;
  }
}
