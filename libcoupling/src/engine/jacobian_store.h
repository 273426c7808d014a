// One probe's Jacobians during a measurement: `count` d x d float32 matrices in a flat index,
// held in memory on the model's device, or spilled to an unlinked temporary file (in $TMPDIR,
// else /tmp) when they would take more than a budget on the CPU. The measurement then reads them
// back a few at a time (spectra one by one, coupling in row chunks), so its memory does not grow
// with depth: a spilled 32-block d = 4096 probe holds 64 MiB of Jacobians instead of 2 GiB.
// Internal to the engine (measurement.cpp).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace coupling {

class JacobianStore {
 public:
  /// Room for `count` Jacobians of width `d` with the model's tensor `options`; spilled when
  /// count d^2 floats exceed `max_memory_bytes` and the device is the CPU.
  JacobianStore(int64_t count, int64_t d, const at::TensorOptions& options, int64_t max_memory_bytes);
  ~JacobianStore();
  JacobianStore(const JacobianStore&) = delete;
  JacobianStore& operator=(const JacobianStore&) = delete;

  bool spilled() const { return fd_ >= 0; }
  int64_t width() const { return d_; }
  /// Stores Jacobian `index` ([d, d]). Throws coupling::Error when the temporary file cannot take it.
  void put(int64_t index, const at::Tensor& jacobian);
  /// The Jacobians `indices`: [indices.size(), d, d], float32 on the store's device.
  at::Tensor get(const std::vector<int64_t>& indices) const;
  /// Every Jacobian [count, d, d]; in memory only.
  const at::Tensor& all() const;

 private:
  int64_t count_, d_;
  at::TensorOptions options_;
  at::Tensor memory_;  ///< [count, d, d] unless spilled
  int fd_ = -1;        ///< the unlinked temporary file when spilled
};

}  // namespace coupling
