#include "coupling/engine/device.h"

#include "coupling/choices.h"
#include "coupling/error.h"
#include "internal/parse_integer.h"

#include <ATen/autocast_mode.h>
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
      throw ConfigError(flag + " '" + spec + "': the device index must be a non-negative integer (cuda:0, cuda:1, ...)");
    }
    index = *parsed;
  } else if (spec != "cuda") {
    throw ConfigError(flag + " '" + spec + "' is not a device: use " + kDeviceChoices);
  }
  if (!torch_has_cuda()) {
    throw ConfigError(flag + " " + spec + ": this LibTorch (" + torch_version() +
                      ") was built without CUDA; use " + flag + " cpu, or build against a CUDA LibTorch "
                      "(scripts/build.sh --torch pip)");
  }
  const int64_t count = cuda_device_count();
  if (count == 0) {
    throw ConfigError(flag + " " + spec + ": no CUDA device is visible (this LibTorch " + torch_version() +
                      " has CUDA, but the machine has no GPU or no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides it); "
                      "use " + flag + " cpu");
  }
  if (index >= count) {
    throw ConfigError(flag + " " + spec + ": only " + std::to_string(count) + " CUDA device(s) visible (cuda:0 to cuda:" +
                      std::to_string(count - 1) + ")");
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

// The autocast API gained per-device-type functions in LibTorch 2.4 (the older ones are
// deprecated there); these four are the only version-dependent calls.
namespace {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocast_enabled(c10::DeviceType type) { return at::autocast::is_autocast_enabled(type); }
void set_autocast_enabled(c10::DeviceType type, bool on) { at::autocast::set_autocast_enabled(type, on); }
c10::ScalarType autocast_dtype(c10::DeviceType type) { return at::autocast::get_autocast_dtype(type); }
void set_autocast_dtype(c10::DeviceType type, c10::ScalarType dtype) { at::autocast::set_autocast_dtype(type, dtype); }
#else
bool autocast_enabled(c10::DeviceType type) {
  return type == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
void set_autocast_enabled(c10::DeviceType type, bool on) {
  type == c10::DeviceType::CUDA ? at::autocast::set_enabled(on) : at::autocast::set_cpu_enabled(on);
}
c10::ScalarType autocast_dtype(c10::DeviceType type) {
  return type == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_autocast_dtype(c10::DeviceType type, c10::ScalarType dtype) {
  type == c10::DeviceType::CUDA ? at::autocast::set_autocast_gpu_dtype(dtype) : at::autocast::set_autocast_cpu_dtype(dtype);
}
#endif

}  // namespace

void AutocastScope::validate(const std::string& precision, c10::Device device) {
  if (!is_choice(precision_choices(), precision)) {
    throw ConfigError("--precision '" + precision + "' is not a precision: use " + quoted_choices(precision_choices()));
  }
  if (precision == "bf16" && !device.is_cpu() && !device.is_cuda()) {
    throw ConfigError("--precision bf16: autocast is supported here on cpu and cuda devices only, not " + device.str());
  }
}

AutocastScope::AutocastScope(const std::string& precision, c10::Device device) {
  validate(precision, device);
  if (precision == "fp32") return;
  active_ = true;
  type_ = device.type();
  was_enabled_ = autocast_enabled(type_);
  previous_dtype_ = autocast_dtype(type_);
  set_autocast_dtype(type_, c10::ScalarType::BFloat16);
  set_autocast_enabled(type_, true);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();  // as Python's autocast exit
  set_autocast_enabled(type_, was_enabled_);
  set_autocast_dtype(type_, previous_dtype_);
}

}  // namespace coupling
