#include "coupling/engine/device.h"

#include "coupling/choices.h"
#include "coupling/error.h"
#include "internal/parse_integer.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/version.h>

namespace coupling {

bool torch_has_cuda() { return c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA); }

int64_t cuda_device_count() {
  if (!torch_has_cuda()) return 0;
  // CUDA's guard answers 0 (it does not throw) when there is no driver or no device.
  return static_cast<int64_t>(c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->deviceCount());
}

std::string torch_version() { return TORCH_VERSION; }

c10::Device resolve_device(const std::string& spec, const std::string& flag) {
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "auto") return cuda_device_count() > 0 ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  int64_t index = 0;
  if (spec.rfind("cuda:", 0) == 0) {
    const auto parsed = detail::parse_int64(spec.substr(5));
    if (!parsed || *parsed < 0) {
      throw ConfigError(flag + " '" + spec +
                        "': the device index must be a non-negative integer (cuda:0, cuda:1, ...)");
    }
    index = *parsed;
  } else if (spec != "cuda") {
    throw ConfigError(flag + " '" + spec + "' is not a device: use " + kDeviceChoices);
  }
  if (!torch_has_cuda()) {
    throw ConfigError(flag + " " + spec + ": this LibTorch (" + torch_version() + ") was built without CUDA; use " +
                      flag +
                      " cpu, or build against a CUDA LibTorch "
                      "(scripts/build.sh --torch pip)");
  }
  const int64_t count = cuda_device_count();
  if (count == 0) {
    throw ConfigError(flag + " " + spec + ": no CUDA device is visible (this LibTorch " + torch_version() +
                      " has CUDA, but the machine has no GPU or no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides it); "
                      "use " +
                      flag + " cpu");
  }
  if (index >= count) {
    throw ConfigError(flag + " " + spec + ": only " + std::to_string(count) +
                      " CUDA device(s) visible (cuda:0 to cuda:" + std::to_string(count - 1) + ")");
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

c10::Device resolve_rank_device(const std::string& spec, int64_t local_rank, const std::string& flag) {
  const c10::Device device = resolve_device(spec, flag);
  if (!device.is_cuda() || spec.rfind("cuda:", 0) == 0) return device;
  const int64_t count = cuda_device_count();
  if (count == 1) return device;  // one GPU per process, chosen by the launcher
  if (local_rank >= count) {
    throw ConfigError(flag + " " + spec + ": this rank's LOCAL_RANK " + std::to_string(local_rank) + " has no GPU (" +
                      std::to_string(count) + " visible): start at most " + std::to_string(count) +
                      " ranks per node, or give each rank its own CUDA_VISIBLE_DEVICES");
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

}  // namespace coupling
