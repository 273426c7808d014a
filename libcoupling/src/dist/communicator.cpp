#include "coupling/dist/communicator.h"

#include "dist/local_rendezvous.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <optional>

namespace coupling {

bool nccl_available() {
#ifdef USE_C10D_NCCL
  return true;
#else
  return false;
#endif
}

std::string resolve_backend(const std::string& choice, c10::Device device) {
  if (choice != "auto") return choice;
  return device.is_cuda() ? "nccl" : "gloo";
}

struct Communicator::Impl {
  int64_t rank = 0;
  int64_t world_size = 1;
  std::string backend;
  at::Device device{at::kCPU};  ///< where collective buffers live: NCCL needs this rank's GPU
  c10::intrusive_ptr<c10d::Store> store;
  // ProcessGroupGloo/NCCL are ProcessGroups in LibTorch 1.13 and Backends in 2.x; both expose
  // the collectives used here with the same signatures.
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  c10::intrusive_ptr<c10d::ProcessGroup> user_group;  ///< from_process_group
  std::optional<DistEnv> local_rendezvous;  ///< a single-node job's: released by rank 0 at the end

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (local_rendezvous && rank == 0) detail::release_local_rendezvous(*local_rendezvous);
  }

  template <class Fn>
  void run(const std::string& operation, const std::string& what, Fn&& fn) {
    try {
#ifdef USE_C10D_NCCL
      if (nccl) {
        fn(*nccl)->wait();
        return;
      }
#endif
      if (user_group) {
        fn(*user_group)->wait();
        return;
      }
      fn(*gloo)->wait();
    } catch (const std::exception& e) {  // c10::Error, and gloo's own IoException
      const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
      throw CommunicationError(operation + " of " + what + " failed on rank " + std::to_string(rank) + " of " +
                               std::to_string(world_size) + " (" + backend + "): " +
                               (c10_error ? c10_error->what_without_backtrace() : e.what()) +
                               " -- a peer rank probably exited or is stuck; check the other ranks' logs");
    }
  }
};

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;
Communicator::~Communicator() = default;

int64_t Communicator::rank() const { return impl_->rank; }
int64_t Communicator::world_size() const { return impl_->world_size; }
c10::Device Communicator::device() const { return impl_->device; }
const std::string& Communicator::backend() const { return impl_->backend; }

Communicator Communicator::from_process_group(c10::intrusive_ptr<c10d::ProcessGroup> group, c10::Device device) {
  if (!group) throw ConfigError("from_process_group needs a process group (got null)");
  auto impl = std::make_unique<Impl>();
  impl->rank = group->getRank();
  impl->world_size = group->getSize();
  impl->backend = group->getBackendName();
  impl->device = device;
  impl->user_group = std::move(group);
  return Communicator(std::move(impl));
}

Communicator Communicator::connect(const DistEnv& env, const CommunicatorOptions& options) {
  if (options.backend != "gloo" && options.backend != "nccl") {
    throw ConfigError("unknown backend '" + options.backend + "': use gloo (CPU) or nccl (GPU)");
  }
  if (options.backend == "nccl" && !nccl_available()) {
    throw ConfigError("the nccl backend is not available: this LibTorch was built without CUDA/NCCL; use gloo");
  }
  auto impl = std::make_unique<Impl>();
  impl->rank = env.rank;
  impl->world_size = env.world_size;
  impl->backend = options.backend;
  // The store (rank 0 hosts it) and the process group's own handshake both wait for every rank.
  auto rendezvous_error = [&](const std::exception& e) {
    const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
    return CommunicationError("rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) +
                              " failed for rank " + std::to_string(env.rank) + " of " +
                              std::to_string(env.world_size) + " (" + options.backend + "): " +
                              (c10_error ? c10_error->what_without_backtrace() : e.what()) +
                              " -- check that every rank was started, that MASTER_ADDR/MASTER_PORT agree, and that "
                              "the port is free");
  };
  // A job on this machine alone listens on loopback only: a FileStore in a private directory
  // (local_rendezvous.h) and Gloo on 127.0.0.1. A store that torchrun's agent already hosts is
  // joined as it is. Only the process group's handshake waits for every rank, so a rank that
  // never arrives fails the others after one --dist-timeout.
  const bool local = env.single_node() && !env.launcher_hosts_store;
  try {
    c10::intrusive_ptr<c10d::Store> store;
    if (local) {
      store = detail::local_rendezvous_store(env, options.timeout);
      impl->local_rendezvous = env;
    } else {
      c10d::TCPStoreOptions store_options;
      store_options.port = static_cast<std::uint16_t>(env.master_port);
      store_options.isServer = env.rank == 0 && !env.launcher_hosts_store;
      store_options.numWorkers = static_cast<std::size_t>(env.world_size);
      store_options.waitWorkers = false;
      store_options.timeout = options.timeout;
      store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
    }
    // A store shared with torchrun's agent (and its earlier attempts) gets a key space of our own.
    impl->store = c10::make_intrusive<c10d::PrefixStore>(
        "libcoupling/attempt_" + std::to_string(env.restart_count), store);
  } catch (const ConfigError&) {
    throw;  // the rendezvous directory is not private: the user's to fix
  } catch (const std::exception& e) {
    throw rendezvous_error(e);
  }
  try {
#ifdef USE_C10D_NCCL
    if (options.backend == "nccl") {
      // Without blocking wait, WorkNCCL::wait() only orders streams: a dead peer would surface as
      // the watchdog aborting the process, not as a CommunicationError within the timeout.
      ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
      // NCCL's bootstrap sockets: on the loopback interface for a single-node job.
      if (local) ::setenv("NCCL_SOCKET_IFNAME", "lo", /*overwrite=*/0);
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = options.timeout;
      impl->device = options.device.is_cuda() ? options.device
                                              : at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
      impl->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl->store, env.rank, env.world_size, nccl_options);
      return Communicator(std::move(impl));
    }
#endif
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
    gloo_options->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                          : c10d::ProcessGroupGloo::createDefaultDevice());
    impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, env.rank, env.world_size, gloo_options);
  } catch (const std::exception& e) {
    throw rendezvous_error(e);
  }
  return Communicator(std::move(impl));
}

namespace {

/// c10d's tensor lists are one tensor per device, so several tensors travel as ONE flat buffer
/// (one collective, not one per tensor): `collective` runs on the buffer, results are copied back.
template <class Collective>
void on_flat_buffer(std::vector<at::Tensor>& tensors, const std::string& what, at::Device device,
                    Collective&& collective) {
  if (tensors.empty()) return;
  std::vector<at::Tensor> flat_parts;
  for (const auto& t : tensors) {
    if (t.scalar_type() != tensors.front().scalar_type()) {
      throw ConfigError("the tensors of " + what + " must share one dtype to travel in one buffer");
    }
    flat_parts.push_back(t.reshape({-1}));
  }
  std::vector<at::Tensor> buffer{at::cat(flat_parts).to(device)};
  collective(buffer);
  int64_t offset = 0;
  for (auto& t : tensors) {
    t.copy_(buffer[0].narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

}  // namespace

void Communicator::all_reduce_sum(std::vector<at::Tensor>& tensors, const std::string& what) {
  on_flat_buffer(tensors, what, impl_->device, [&](std::vector<at::Tensor>& buffer) {
    impl_->run("all-reduce", what, [&](auto& group) { return group.allreduce(buffer); });
  });
}

void Communicator::broadcast(std::vector<at::Tensor>& tensors, int64_t root, const std::string& what) {
  c10d::BroadcastOptions options;
  options.rootRank = root;
  on_flat_buffer(tensors, what, impl_->device, [&](std::vector<at::Tensor>& buffer) {
    impl_->run("broadcast", what, [&](auto& group) { return group.broadcast(buffer, options); });
  });
}

std::vector<at::Tensor> Communicator::all_gather(const at::Tensor& tensor, const std::string& what) {
  std::vector<at::Tensor> input{tensor.contiguous().to(impl_->device)};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int64_t r = 0; r < impl_->world_size; ++r) output[0].push_back(at::empty_like(input[0]));
  impl_->run("all-gather", what, [&](auto& group) { return group.allgather(output, input); });
  for (auto& t : output[0]) t = t.to(tensor.device());
  return output[0];
}

void Communicator::barrier(const std::string& what) {
  impl_->run("barrier", what, [&](auto& group) { return group.barrier(); });
}

}  // namespace coupling
