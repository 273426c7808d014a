// Collectives across the ranks of a data-parallel job on PyTorch's own engine, c10d: a TCPStore
// rendezvous hosted by rank 0, then a Gloo process group (CPU) or, where the LibTorch in use was
// built with NCCL, an NCCL one. c10d stays behind a pimpl, so this header is light.
//
// Every collective takes a short description of what it carries; a failure (a peer died, a
// timeout) becomes a coupling::CommunicationError naming that operation and the ranks, instead
// of a hang or an opaque c10 error.
#pragma once

#include "coupling/dist/dist_env.h"
#include "coupling/error.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace c10d {
class ProcessGroup;
}

namespace coupling {

/// A collective or the rendezvous failed; the message names the operation and what to check.
class CommunicationError : public Error {
 public:
  using Error::Error;
};

struct CommunicatorOptions {
  std::string backend = "gloo";                     ///< "gloo", or "nccl" when compiled in (resolve_backend)
  std::chrono::milliseconds timeout{30000};         ///< rendezvous and per-collective timeout
  /// NCCL: this rank's GPU (resolve_rank_device); a CPU device here means cuda:LOCAL_RANK.
  c10::Device device = c10::Device(c10::kCPU);
};

/// True when this build of LibTorch has the NCCL backend.
bool nccl_available();

/// A --backend choice for a job whose ranks compute on `device`: "auto" is nccl for CUDA devices
/// and gloo otherwise; "gloo" and "nccl" stay as they are (connect() checks them).
std::string resolve_backend(const std::string& choice, c10::Device device);

class Communicator {
 public:
  /// Rendezvous at env.master_addr:env.master_port and create the process group. Throws
  /// CommunicationError on a timeout (a rank that never arrives), a port in use, or a bad backend.
  static Communicator connect(const DistEnv& env, const CommunicatorOptions& options = {});

  /// Wraps a process group the user already has (e.g. the one their trainer set up). Collective
  /// buffers are placed on `device` (a CUDA device for NCCL groups).
  static Communicator from_process_group(c10::intrusive_ptr<c10d::ProcessGroup> group,
                                         c10::Device device = c10::Device(c10::kCPU));

  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  ~Communicator();

  int64_t rank() const;
  int64_t world_size() const;
  /// Where collective buffers live: this rank's GPU for NCCL, else the CPU.
  c10::Device device() const;
  /// "gloo", "nccl", or the name of a user's process group.
  const std::string& backend() const;

  /// In-place element-wise sum over ranks. Several tensors (one dtype) travel as one flat buffer.
  void all_reduce_sum(std::vector<at::Tensor>& tensors, const std::string& what);
  /// In-place copy of rank `root`'s tensors to every rank (one flat buffer, as above).
  void broadcast(std::vector<at::Tensor>& tensors, int64_t root, const std::string& what);
  /// Every rank's `tensor` (same shape on all ranks), in rank order.
  std::vector<at::Tensor> all_gather(const at::Tensor& tensor, const std::string& what);
  void barrier(const std::string& what);

 private:
  struct Impl;
  explicit Communicator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coupling
