// bf16 autocast for the forward passes of training (--precision), on the autocast API of the
// LibTorch in use (it changed between 1.13 and 2.x). Measurements never run inside one.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace trainer {

/// Turns autocast to bf16 on for the forward passes of training on `device` for the scope's
/// life ("fp32": does nothing), and restores the previous state after. Measurements never run
/// inside one. Throws coupling::ConfigError for an unknown precision, or when this LibTorch cannot autocast
/// on that device type.
class AutocastScope {
 public:
  AutocastScope(const std::string& precision, c10::Device device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

  /// Throws what the constructor would, without changing anything (for up-front validation).
  static void validate(const std::string& precision, c10::Device device);

 private:
  bool active_ = false;
  c10::DeviceType type_ = c10::DeviceType::CPU;
  bool was_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::BFloat16;
};

}  // namespace trainer
