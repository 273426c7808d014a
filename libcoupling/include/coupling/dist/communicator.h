// Collectives across the ranks of a data-parallel job on PyTorch's own engine, c10d: a thin wrapper
// of a process group that the caller made (the bundled trainers' rendezvous, or a Python job's
// torch.distributed group). c10d stays behind a pimpl, so this header is light.
//
// Every collective takes a short description of what it carries; a failure (a peer died, a
// timeout) becomes a coupling::CommunicationError naming that operation and the ranks, instead
// of a hang or an opaque c10 error.
#pragma once

#include "coupling/error.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/util/intrusive_ptr.h>

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

class Communicator {
 public:
  /// Wraps a process group that already exists (e.g. the one a trainer set up). Collective
  /// buffers are placed on `device` (a CUDA device for NCCL groups). `keep_alive` lives as long
  /// as the communicator: what made the group and must outlast it (e.g. a rendezvous lease).
  static Communicator from_process_group(c10::intrusive_ptr<c10d::ProcessGroup> group,
                                         c10::Device device = c10::Device(c10::kCPU),
                                         std::shared_ptr<const void> keep_alive = nullptr);

  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  ~Communicator();

  int64_t rank() const;
  int64_t world_size() const;
  /// Where collective buffers live: this rank's GPU for NCCL, else the CPU.
  c10::Device device() const;
  /// The process group's backend name: "gloo", "nccl", ...
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
