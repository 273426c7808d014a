// Benchmark plumbing: medians of repeated timings, the machine's sgemm rate, and running a
// benchmark case in a fresh child process to read its peak memory (ru_maxrss via wait4).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bench {

/// Median wall seconds of `repeats` calls of `fn` (after one untimed warm-up when `warm_up`).
double median_seconds(const std::function<void()>& fn, int repeats, bool warm_up = true);

/// sgemm rate (GFLOP/s) of an n x n x n float product, best of a few.
double sgemm_gflops(int64_t n);

/// Output and peak resident memory of a child process.
struct ChildResult {
  std::string output;
  double peak_mib = 0.0;
  int status = -1;
};

/// Runs argv (argv[0] a path) in a child process; captures stdout.
ChildResult run_child(const std::vector<std::string>& argv);

}  // namespace bench
