// Choosing where tensors live: the `--device cpu|cuda|cuda:N|auto` of every binary, resolved
// once against the LibTorch in use and the machine. A CUDA request that cannot be served fails
// with a ConfigError that says which of the two is missing (a CUDA build of LibTorch, or a
// visible device), so a front end prints one line and exits 2 before anything is written.
// Also the one place that knows the LibTorch version.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

namespace coupling {

/// The choices of --device, for help texts and validators.
inline constexpr const char* kDeviceChoices = "cpu, cuda, cuda:N or auto";

/// Whether this LibTorch was built with CUDA (libtorch_cuda is loaded).
bool torch_has_cuda();

/// CUDA devices visible to this process (0 without a GPU, without a driver, or on a CPU build).
int64_t cuda_device_count();

/// "cpu" -> CPU; "cuda" -> cuda:0; "cuda:N"; "auto" -> cuda:0 when a CUDA device is visible,
/// else CPU. Throws ConfigError (naming `flag`) for anything else or for an unservable request.
c10::Device resolve_device(const std::string& spec, const std::string& flag = "--device");

/// The device of one data-parallel rank (or of a single process, local_rank 0): as
/// resolve_device, except that "cuda" and "auto" on CUDA mean cuda:local_rank, or cuda:0 when
/// this process sees one GPU only (a per-rank CUDA_VISIBLE_DEVICES). An explicit cuda:N is kept.
/// Throws ConfigError when local_rank has no GPU of its own.
c10::Device resolve_rank_device(const std::string& spec, int64_t local_rank, const std::string& flag = "--device");

/// The LibTorch version this program runs with, e.g. "2.15.0" (from its headers).
std::string torch_version();

}  // namespace coupling
