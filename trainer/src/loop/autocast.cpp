#include "trainer/loop/autocast.h"

#include "coupling/choices.h"
#include "coupling/error.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace trainer {

using coupling::ConfigError;

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
  return type == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                       : at::autocast::get_autocast_cpu_dtype();
}
void set_autocast_dtype(c10::DeviceType type, c10::ScalarType dtype) {
  type == c10::DeviceType::CUDA ? at::autocast::set_autocast_gpu_dtype(dtype)
                                : at::autocast::set_autocast_cpu_dtype(dtype);
}
#endif

}  // namespace

void AutocastScope::validate(const std::string& precision, c10::Device device) {
  if (!coupling::is_choice(coupling::precision_choices(), precision)) {
    throw ConfigError("--precision '" + precision + "' is not a precision: use " +
                      coupling::quoted_choices(coupling::precision_choices()));
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

}  // namespace trainer
