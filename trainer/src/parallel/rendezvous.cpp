#include "trainer/parallel/rendezvous.h"

#include "parallel/local_rendezvous.h"

#include "coupling/error.h"

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>
#include <torch/version.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace trainer {
namespace {

/// Rank 0 of a single-node job releases its rendezvous files when the communicator goes.
class LocalRendezvousLease {
 public:
  explicit LocalRendezvousLease(DistEnv env) : env_(std::move(env)) {}
  LocalRendezvousLease(const LocalRendezvousLease&) = delete;
  LocalRendezvousLease& operator=(const LocalRendezvousLease&) = delete;
  ~LocalRendezvousLease() {
    if (env_.rank == 0) release_local_rendezvous(env_);
  }

 private:
  DistEnv env_;
};

/// A Gloo or NCCL group as the ProcessGroup a Communicator wraps. LibTorch 1.13: they are
/// ProcessGroups. LibTorch 2.x: they are Backends of a ProcessGroup that dispatches to them, as
/// torch.distributed makes it (the ProcessGroup(store, rank, size) constructor of recent 2.x: built
/// and tested with the pinned 2.15; the NCCL path has not run here, for want of two GPUs).
template <class Group>
c10::intrusive_ptr<c10d::ProcessGroup> as_process_group([[maybe_unused]] const c10::intrusive_ptr<c10d::Store>& store,
                                                        [[maybe_unused]] const DistEnv& env,
                                                        c10::intrusive_ptr<Group> group,
                                                        [[maybe_unused]] c10::DeviceType device_type,
                                                        [[maybe_unused]] bool nccl) {
#if TORCH_VERSION_MAJOR >= 2
  auto wrapper =
      c10::make_intrusive<c10d::ProcessGroup>(store, static_cast<int>(env.rank), static_cast<int>(env.world_size));
  const auto type = nccl ? c10d::ProcessGroup::BackendType::NCCL : c10d::ProcessGroup::BackendType::GLOO;
  wrapper->setBackend(device_type, type, group);
  wrapper->setDefaultBackend(type);
  return wrapper;
#else
  return group;
#endif
}

/// Gloo's devices for this rank: loopback for a job on one machine; on several, one per interface
/// that GLOO_SOCKET_IFNAME names (comma-separated, as PyTorch reads it), else the address the host
/// name resolves to, Gloo's default, which is loopback on many machines (docs/distributed.md).
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices(bool local) {
  if (local) return {c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")};
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  const char* names = std::getenv("GLOO_SOCKET_IFNAME");
  std::stringstream list(names == nullptr ? "" : names);
  for (std::string name; std::getline(list, name, ',');) {
    if (name.empty()) continue;
    try {
      devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    } catch (const std::exception& e) {
      throw coupling::ConfigError("GLOO_SOCKET_IFNAME names interface '" + name +
                                  "', which Gloo cannot use on this host (" + e.what() +
                                  "): name this host's interface on the job's network (ip -brief address)");
    }
  }
  if (devices.empty()) devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return devices;
}

}  // namespace

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

coupling::Communicator connect(const DistEnv& env, const RendezvousOptions& options) {
  if (options.backend != "gloo" && options.backend != "nccl") {
    throw coupling::ConfigError("unknown backend '" + options.backend + "': use gloo (CPU) or nccl (GPU)");
  }
  if (options.backend == "nccl" && !nccl_available()) {
    throw coupling::ConfigError(
        "the nccl backend is not available: this LibTorch was built without CUDA/NCCL; use gloo");
  }
  // The store (rank 0 hosts it) and the process group's own handshake both wait for every rank.
  auto rendezvous_error = [&](const std::exception& e) {
    const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
    return coupling::CommunicationError(
        "rendezvous at " + env.master_addr + ":" + std::to_string(env.master_port) + " failed for rank " +
        std::to_string(env.rank) + " of " + std::to_string(env.world_size) + " (" + options.backend +
        "): " + (c10_error ? c10_error->what_without_backtrace() : e.what()) +
        " -- check that every rank was started, that MASTER_ADDR/MASTER_PORT agree, and that the port is free");
  };
  // A job on this machine alone listens on loopback only: a FileStore in a private directory
  // (local_rendezvous.h) and Gloo on 127.0.0.1. A store that torchrun's agent already hosts is
  // joined as it is. Only the process group's handshake waits for every rank, so a rank that
  // never arrives fails the others after one --dist-timeout.
  const bool local = env.single_node() && !env.launcher_hosts_store;
  std::shared_ptr<LocalRendezvousLease> lease;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10::intrusive_ptr<c10d::Store> base;
    if (local) {
      base = local_rendezvous_store(env, options.timeout);
      lease = std::make_shared<LocalRendezvousLease>(env);
    } else {
      c10d::TCPStoreOptions store_options;
      store_options.port = static_cast<std::uint16_t>(env.master_port);
      store_options.isServer = env.rank == 0 && !env.launcher_hosts_store;
      store_options.numWorkers = static_cast<std::size_t>(env.world_size);
      store_options.waitWorkers = false;
      store_options.timeout = options.timeout;
      base = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
    }
    // A store shared with torchrun's agent (and its earlier attempts) gets a key space of our own.
    store = c10::make_intrusive<c10d::PrefixStore>("libcoupling/attempt_" + std::to_string(env.restart_count), base);
  } catch (const coupling::ConfigError&) {
    throw;  // the rendezvous directory is not private: the user's to fix
  } catch (const std::exception& e) {
    throw rendezvous_error(e);
  }
  const auto rank = static_cast<int>(env.rank);
  const auto size = static_cast<int>(env.world_size);
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
      const c10::Device device = options.device.is_cuda()
                                     ? options.device
                                     : c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
      auto nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, nccl_options);
      return coupling::Communicator::from_process_group(as_process_group(store, env, nccl, c10::kCUDA, true), device,
                                                        lease);
    }
#endif
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
    gloo_options->devices = gloo_devices(local);
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, gloo_options);
    return coupling::Communicator::from_process_group(as_process_group(store, env, gloo, c10::kCPU, false),
                                                      c10::Device(c10::kCPU), lease);
  } catch (const std::exception& e) {
    throw rendezvous_error(e);
  }
}

coupling::Communicator join_job(const DistEnv& env, const std::string& backend, c10::Device device,
                                std::chrono::seconds timeout) {
  spdlog::set_pattern("[%H:%M:%S] [rank " + std::to_string(env.rank) + "] [%^%l%$] %v");
  if (env.rank > 0) spdlog::set_level(spdlog::level::warn);  // rank 0 reports progress
  RendezvousOptions options;
  options.backend = resolve_backend(backend, device);
  options.device = device;
  options.timeout = timeout;
  return connect(env, options);
}

int64_t rank_threads(int64_t requested, const DistEnv& env) {
  if (requested > 0) return requested;
  const auto cores = static_cast<int64_t>(std::max(1U, std::thread::hardware_concurrency()));
  return std::max<int64_t>(1, cores / env.local_world_size);
}

}  // namespace trainer
