#include "coupling/dist/communicator.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

namespace coupling {

struct Communicator::Impl {
  int64_t rank = 0;
  int64_t world_size = 1;
  std::string backend;
  at::Device device{at::kCPU};             ///< where collective buffers live: NCCL needs this rank's GPU
  std::shared_ptr<const void> keep_alive;  ///< what made the group: released after it
  c10::intrusive_ptr<c10d::ProcessGroup> group;

  template <class Fn>
  void run(const std::string& operation, const std::string& what, Fn&& fn) {
    try {
      fn(*group)->wait();
    } catch (const std::exception& e) {  // c10::Error, and gloo's own IoException
      const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
      throw CommunicationError(operation + " of " + what + " failed on rank " + std::to_string(rank) + " of " +
                               std::to_string(world_size) + " (" + backend +
                               "): " + (c10_error ? c10_error->what_without_backtrace() : e.what()) +
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

Communicator Communicator::from_process_group(c10::intrusive_ptr<c10d::ProcessGroup> group, c10::Device device,
                                              std::shared_ptr<const void> keep_alive) {
  if (!group) throw ConfigError("from_process_group needs a process group (got null)");
  auto impl = std::make_unique<Impl>();
  impl->rank = group->getRank();
  impl->world_size = group->getSize();
  impl->backend = group->getBackendName();
  impl->device = device;
  impl->group = std::move(group);
  impl->keep_alive = std::move(keep_alive);
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
