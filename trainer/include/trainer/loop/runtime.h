// Process-wide compute setup: the intra-op thread count (LibTorch reports 1 on this kind of VM
// unless told otherwise), OpenBLAS kernel selection (on VMs that mask the CPU model OpenBLAS
// falls back to its generic "Prescott" kernels, 5x slower here), and a quick sgemm rate check
// that warns loudly when LibTorch runs on reference BLAS (about 30x slower than OpenBLAS).
#pragma once

#include <cstdint>
#include <string>

namespace trainer {

/// When OpenBLAS is loaded, OPENBLAS_CORETYPE is unset, and OpenBLAS picked a generic kernel on
/// a CPU with AVX-512 (or AVX2), re-executes the program (`argv` as given to main) with
/// OPENBLAS_CORETYPE=SkylakeX (or Haswell): OpenBLAS reads it only when it is loaded. Returns
/// normally when nothing needs to change. Call it first thing in main().
void reexec_with_tuned_openblas(char** argv);

/// The OpenBLAS kernel in use ("SkylakeX", ...), or "none" when LibTorch does not use OpenBLAS.
std::string openblas_core();

/// True for OpenBLAS kernel names that mean "CPU not recognised, pre-AVX code" (e.g. Prescott).
bool is_generic_openblas_core(const std::string& core);

/// Sets LibTorch's intra-op thread count (which OpenBLAS-openmp shares) to `requested`, or to
/// the number of cores when `requested` is 0. Returns the count in effect.
int64_t configure_threads(int64_t requested);

/// Measured single-precision matmul rate in GFLOP/s (a 512 x 512 product, best of a few).
double measure_matmul_gflops();

/// Below this rate the BLAS in use is almost certainly the reference implementation.
constexpr double kReferenceBlasGflops = 10.0;

/// configure_threads + measure_matmul_gflops, logging both (and a warning on slow BLAS).
void setup_compute(int64_t requested_threads);

}  // namespace trainer
