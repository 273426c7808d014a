// How the bundled trainers join a data-parallel job: from the launcher's environment (env.h) to
// a c10d process group (Gloo on CPU, NCCL where this LibTorch has it), wrapped in the library's
// coupling::Communicator. A job on one machine meets through a private FileStore and talks over
// loopback only (local_rendezvous.h); a multi-node job through a TCPStore hosted by rank 0.
#pragma once

#include "coupling/dist/communicator.h"
#include "trainer/parallel/env.h"

#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace trainer {

struct RendezvousOptions {
  std::string backend = "gloo";              ///< "gloo", or "nccl" when compiled in (resolve_backend)
  std::chrono::milliseconds timeout{30000};  ///< rendezvous and per-collective timeout
  /// NCCL: this rank's GPU (resolve_rank_device); a CPU device here means cuda:LOCAL_RANK.
  c10::Device device = c10::Device(c10::kCPU);
};

/// True when this build of LibTorch has the NCCL backend.
bool nccl_available();

/// A --backend choice for a job whose ranks compute on `device`: "auto" is nccl for CUDA devices
/// and gloo otherwise; "gloo" and "nccl" stay as they are (connect() checks them).
std::string resolve_backend(const std::string& choice, c10::Device device);

/// Rendezvous at env.master_addr:env.master_port and create the process group. Throws
/// coupling::CommunicationError on a timeout (a rank that never arrives) or a port in use, and
/// coupling::ConfigError for a backend this build lacks.
coupling::Communicator connect(const DistEnv& env, const RendezvousOptions& options = {});

/// How the bundled tools join the job a launcher started them in: log lines tagged with the
/// rank (ranks other than 0 log warnings and errors only), then connect() with `backend` (a
/// --backend choice, resolve_backend) on `device`, every collective bounded by `timeout`.
coupling::Communicator join_job(const DistEnv& env, const std::string& backend, c10::Device device,
                                std::chrono::seconds timeout);

/// The intra-op threads of one rank: `requested`, or for 0 this node's cores shared by its
/// LOCAL_WORLD_SIZE ranks (at least 1), so that the ranks of a node do not oversubscribe it.
int64_t rank_threads(int64_t requested, const DistEnv& env);

}  // namespace trainer
