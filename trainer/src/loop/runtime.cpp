#include "trainer/loop/runtime.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace trainer {

std::string openblas_core() {
  using CoreNameFn = char* (*)();
  auto* core_name = reinterpret_cast<CoreNameFn>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return core_name ? std::string(core_name()) : std::string("none");
}

bool is_generic_openblas_core(const std::string& core) {
  for (const char* generic : {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine",
                              "Northwood", "Banias"}) {
    if (core == generic) return true;
  }
  return false;
}

void reexec_with_tuned_openblas(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // the user's choice, or our re-exec
  if (!is_generic_openblas_core(openblas_core())) return;
  const char* tuned = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                      : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                        : nullptr;
  if (tuned == nullptr) return;
  ::setenv("OPENBLAS_CORETYPE", tuned, 1);
  ::execv("/proc/self/exe", argv);  // only returns on failure: carry on with the generic kernels
}

int64_t configure_threads(int64_t requested) {
  const int64_t cores = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  const int64_t threads = requested > 0 ? requested : cores;
  at::set_num_threads(static_cast<int>(threads));
  return at::get_num_threads();
}

double measure_matmul_gflops() {
  constexpr int64_t n = 512;
  auto a = at::full({n, n}, 0.5);  // values do not matter; leaves the RNG untouched
  auto b = at::full({n, n}, 0.25);
  at::mm(a, b);  // warm-up
  double best = 1e30;
  for (int repeat = 0; repeat < 3; ++repeat) {
    const auto start = std::chrono::steady_clock::now();
    at::mm(a, b);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

void setup_compute(int64_t requested_threads) {
  const int64_t threads = configure_threads(requested_threads);
  const double gflops = measure_matmul_gflops();
  const std::string core = openblas_core();
  spdlog::info("compute: {} intra-op thread(s), OpenBLAS core {}, sgemm {:.0f} GFLOP/s", threads, core, gflops);
  if (core == "none" && gflops < kReferenceBlasGflops) {
    spdlog::warn(
        "!!! sgemm runs at only {:.1f} GFLOP/s: LibTorch is probably using the reference BLAS. "
        "Install libopenblas0-openmp (scripts/setup.sh does) for a 10-30x speed-up !!!",
        gflops);
  } else if (is_generic_openblas_core(core)) {
    spdlog::warn(
        "OpenBLAS uses its generic {} kernels (CPU model not recognised); export "
        "OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2) for a ~5x faster sgemm",
        core);
  }
}

}  // namespace trainer
