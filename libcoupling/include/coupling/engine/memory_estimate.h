// How much memory a measurement will need, estimated before it starts, and how much this host (or
// device) has: a measurement that cannot fit is refused in one line before anything is written,
// instead of meeting the OOM killer (a SIGKILL) hours into a series. The estimate follows the
// model's footprint, the probes, tokens, context pairs and K, the Jacobian path and the device;
// docs/performance.md section 13 measures it against peak RSS.
#pragma once

#include "coupling/engine/measurement.h"

#include <c10/core/Device.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace coupling {

/// What a model holds in memory besides the measurement's own tensors (bytes).
struct ModelFootprint {
  int64_t measured_bytes = 0;  ///< its tensors while it is measured: every parameter, or one streamed block
  int64_t training_bytes = 0;  ///< in a training run: gradients, optimizer state and training activations
};

/// A peak estimate, in named parts (bytes), on the host and on the measurement's device.
struct MemoryEstimate {
  std::vector<std::pair<std::string, int64_t>> host_parts;
  std::vector<std::pair<std::string, int64_t>> device_parts;  ///< empty on a CPU
  int64_t host_bytes() const;
  int64_t device_bytes() const;
  /// "1.95 GiB (process 0.16, model 0.87, ...)" for the host, and the device's when there is one.
  std::string str() const;
};

/// The peak of measuring `layout` with `options` on `device`, `model` aside. `token_local`: the
/// adapter has the token-local Jacobian (else the generic one, whose workspace is larger).
MemoryEstimate estimate_measurement_memory(const MeasurementLayout& layout, const MeasurementOptions& options,
                                           const ModelFootprint& model, c10::Device device, bool token_local);

/// Memory a process may still take, and where the figure comes from.
struct AvailableMemory {
  int64_t bytes = 0;
  std::string source;  ///< "MemAvailable", "the cgroup's limit", "--max-memory", "free CUDA memory"
};

/// On the host: the smaller of /proc/meminfo's MemAvailable and the cgroup's limit less its usage
/// (cgroup v2, or v1's memory controller), and `max_bytes` when given. nullopt where none of
/// these can be read.
std::optional<AvailableMemory> available_host_memory(std::optional<int64_t> max_bytes = std::nullopt);
/// On a CUDA device: its free memory (cudaMemGetInfo of the process's CUDA runtime); nullopt on a
/// CPU or where CUDA cannot answer.
std::optional<AvailableMemory> available_device_memory(c10::Device device);

/// Throws coupling::ConfigError (exit status 2, nothing written yet) when `ranks_on_host` copies of
/// the estimate exceed what the host has (or one copy what the device has), naming the estimate,
/// what is available and `advice` (what the user can lower). Does nothing where nothing can be read.
void check_memory(const MemoryEstimate& estimate, c10::Device device, int64_t ranks_on_host,
                  std::optional<int64_t> max_bytes, const std::string& advice);

/// What the measurement options let a user lower, for check_memory's advice.
extern const char* const kMeasurementMemoryAdvice;

}  // namespace coupling
