#include "coupling/engine/memory_estimate.h"

#include "coupling/engine/fields.h"
#include "coupling/error.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <fmt/format.h>

#include <dlfcn.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

namespace coupling {

const char* const kMeasurementMemoryAdvice =
    "measure fewer probes, tokens or context pairs, use the matrix-free path (--jacobian matrix-free), or run fewer "
    "ranks on this host";

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
/// LibTorch, HDF5, the BLAS's buffers and the allocator's arenas, besides the parts below:
/// fitted to the peaks of docs/performance.md section 13.
constexpr int64_t kProcessBytes = 256 * kMiB;
/// The coupling matrices' chunks (coupling_metric.cpp): the Jacobians fetched at once, and the
/// two intermediates of a chunk together.
constexpr int64_t kFetchedChunkBytes = 128 * kMiB;
constexpr int64_t kIntermediateChunkBytes = 128 * kMiB;

int64_t sum(const std::vector<std::pair<std::string, int64_t>>& parts) {
  return std::accumulate(parts.begin(), parts.end(), int64_t{0},
                         [](int64_t total, const auto& part) { return total + part.second; });
}

std::string gib(int64_t bytes) { return fmt::format("{:.2f}", static_cast<double>(bytes) / (1 << 30)); }

/// The parts of at least 1 MiB, in MiB.
std::string parts_text(const std::vector<std::pair<std::string, int64_t>>& parts) {
  std::string text;
  for (const auto& [name, bytes] : parts) {
    if (bytes >= kMiB) text += fmt::format("{}{} {}", text.empty() ? "" : ", ", name, bytes / kMiB);
  }
  return text;
}

/// The first number on the line of `path` that starts with `key` (the whole file when key is
/// empty), times `unit`; nullopt when absent or not a number ("max").
std::optional<int64_t> read_number(const std::string& path, const std::string& key, int64_t unit = 1) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0) continue;
    std::istringstream fields(line.substr(key.size()));
    long double value = 0;
    if (!(fields >> value)) return std::nullopt;
    return value * unit >= static_cast<long double>(std::numeric_limits<int64_t>::max())
               ? std::numeric_limits<int64_t>::max()
               : static_cast<int64_t>(value * unit);
  }
  return std::nullopt;
}

/// The cgroup's limit less its usage: v2 (memory.max, memory.current), else v1's memory controller.
std::optional<int64_t> cgroup_headroom() {
  for (const auto& [limit_file, usage_file] :
       {std::pair<const char*, const char*>{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
        {"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"}}) {
    const auto limit = read_number(limit_file, "");
    const auto usage = read_number(usage_file, "");
    // No limit ("max", or v1's page-rounded INT64_MAX) is no constraint.
    if (limit && usage && *limit < (int64_t{1} << 60)) return std::max<int64_t>(0, *limit - *usage);
  }
  return std::nullopt;
}

}  // namespace

int64_t MemoryEstimate::host_bytes() const { return sum(host_parts); }
int64_t MemoryEstimate::device_bytes() const { return sum(device_parts); }

std::string MemoryEstimate::str() const {
  std::string text = fmt::format("{} GiB (MiB: {})", gib(host_bytes()), parts_text(host_parts));
  if (!device_parts.empty()) {
    text += fmt::format(" and {} GiB on the device (MiB: {})", gib(device_bytes()), parts_text(device_parts));
  }
  return text;
}

MemoryEstimate estimate_measurement_memory(const MeasurementLayout& layout, const MeasurementOptions& options,
                                           const ModelFootprint& model, c10::Device device, bool token_local) {
  const int64_t probes = layout.probes, tokens = layout.sequence_length, blocks = layout.blocks, d = layout.d_model;
  const int64_t jacobians = blocks * static_cast<int64_t>(layout.tokens.size() + layout.context_pairs.size());
  const int64_t k_max = layout.k_grid.empty() ? 0 : layout.k_grid.back();
  const int64_t float_bytes = 4;
  // The forward pass of every probe keeps X^0..X^L, and the trajectories a stacked copy.
  const int64_t states = 2 * probes * tokens * (blocks + 1) * d * float_bytes;
  // One backward sweep of replicated activations, at most d rows, within the budget (jacobian.cpp).
  // A token-local replica keeps about 16 d floats (fitted, section 13) and its attention row.
  const int64_t per_replica = token_local ? 64 * d + 64 * tokens : replica_bytes(tokens, d);
  const int64_t workspace = std::min(options.jacobian.max_bytes, d * per_replica);
  const bool cuda = device.is_cuda();
  int64_t held = 0, coupling = 0;
  if (layout.matrix_free) {  // the frames of every Jacobian, never the Jacobians
    held = 2 * jacobians * (k_max + options.randomized.oversample) * d * float_bytes;
  } else {
    const int64_t one_probe = jacobians * d * d * float_bytes;
    held = cuda || layout.keeps_jacobians ? one_probe : std::min(one_probe, options.jacobian_memory_bytes);
    if (layout.keeps_jacobians) held *= probes;
    // The largest coupling set: a token's blocks, a block's tokens, the context pairs' Jacobians,
    // or every block and token; a chunk of N rows holds [N, N, K, K] and [N, d, N K].
    const int64_t tokens_measured = static_cast<int64_t>(layout.tokens.size());
    const int64_t set = std::max({blocks, tokens_measured, blocks * static_cast<int64_t>(layout.context_pairs.size()),
                                  layout.has_block_token_coupling ? blocks * tokens_measured : int64_t{0}});
    const int64_t intermediates = set * set * (d + set * k_max) * k_max * float_bytes;
    coupling = std::min(kFetchedChunkBytes, one_probe) + std::min(kIntermediateChunkBytes, intermediates);
  }
  const bool exact = options.spectrum == SpectrumMethod::kExact ||
                     (options.spectrum == SpectrumMethod::kAuto && 4 * k_max > d && !layout.matrix_free);
  const int64_t spectra =
      exact ? 4 * d * d * float_bytes : 4 * (k_max + options.randomized.oversample) * d * float_bytes;
  const int64_t row = 2 * logged_bytes(layout);  // the measurement's tensors and the log's float64 copy

  MemoryEstimate estimate;
  std::vector<std::pair<std::string, int64_t>> measured = {{"model", model.measured_bytes},
                                                           {"training state", model.training_bytes},
                                                           {"residual states", states},
                                                           {"Jacobian workspace", workspace},
                                                           {"Jacobians", held},
                                                           {"coupling chunks", coupling},
                                                           {"spectra", spectra}};
  estimate.host_parts = {{"process", kProcessBytes}, {"logged row", row}};
  auto& target = cuda ? estimate.device_parts : estimate.host_parts;
  target.insert(target.end(), measured.begin(), measured.end());
  return estimate;
}

std::optional<AvailableMemory> available_host_memory(std::optional<int64_t> max_bytes) {
  std::optional<AvailableMemory> available;
  auto consider = [&](std::optional<int64_t> bytes, const char* source) {
    if (bytes && (!available || *bytes < available->bytes)) available = AvailableMemory{*bytes, source};
  };
  consider(read_number("/proc/meminfo", "MemAvailable:", 1024), "MemAvailable");
  consider(cgroup_headroom(), "the cgroup's limit less its usage");
  consider(max_bytes, "--max-memory");
  return available;
}

std::optional<AvailableMemory> available_device_memory(c10::Device device) {
  if (!device.is_cuda()) return std::nullopt;
  // The CUDA runtime LibTorch loaded, if any: this library does not link CUDA itself.
  using MemGetInfo = int (*)(size_t*, size_t*);
  const auto mem_get_info = reinterpret_cast<MemGetInfo>(::dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
  if (mem_get_info == nullptr) return std::nullopt;
  const auto* guard = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
  const c10::Device previous = guard->exchangeDevice(device);
  size_t free = 0, total = 0;
  const bool answered = mem_get_info(&free, &total) == 0;
  guard->exchangeDevice(previous);
  if (!answered) return std::nullopt;
  return AvailableMemory{static_cast<int64_t>(free), "free CUDA memory on " + device.str()};
}

void check_memory(const MemoryEstimate& estimate, c10::Device device, int64_t ranks_on_host,
                  std::optional<int64_t> max_bytes, const std::string& advice) {
  const int64_t ranks = std::max<int64_t>(1, ranks_on_host);
  const int64_t host_need = estimate.host_bytes() * ranks;
  const auto host = available_host_memory(max_bytes);
  const std::string per_rank = ranks > 1 ? fmt::format(" x {} ranks on this host", ranks) : "";
  if (host && host_need > host->bytes) {
    throw ConfigError(fmt::format("the measurement needs about {}{} and {} GiB is available ({}): {}", estimate.str(),
                                  per_rank, gib(host->bytes), host->source, advice));
  }
  const auto on_device = available_device_memory(device);
  if (on_device && estimate.device_bytes() > on_device->bytes) {
    throw ConfigError(fmt::format("the measurement needs about {} and {} GiB is available ({}): {}", estimate.str(),
                                  gib(on_device->bytes), on_device->source, advice));
  }
}

}  // namespace coupling
