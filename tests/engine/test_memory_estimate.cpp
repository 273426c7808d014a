// The memory estimate: each part against its count by hand (Jacobians held or spilled, on a CUDA
// device or matrix-free), the check's refusal naming the estimate and the limit (ranks on one host
// add up), and memory sizes as --max-memory takes them.
#include "coupling/engine/memory_estimate.h"
#include "coupling/error.h"
#include "coupling/memory_size.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

/// 2 probes of 16 tokens through 3 blocks of width 64, 2 diagonal tokens and 1 context pair.
coupling::MeasurementLayout small_layout() {
  coupling::MeasurementLayout layout;
  layout.probes = 2;
  layout.sequence_length = 16;
  layout.blocks = 3;
  layout.d_model = 64;
  layout.tokens = {7, 15};
  layout.context_pairs = {{0, 15}};
  layout.k_grid = {4, 8};
  return layout;
}

std::map<std::string, int64_t> parts(const std::vector<std::pair<std::string, int64_t>>& list) {
  return {list.begin(), list.end()};
}

TEST(MemoryEstimate, PartsFollowTheLayoutThePathAndTheDevice) {
  const auto layout = small_layout();
  coupling::MeasurementOptions options;
  const coupling::ModelFootprint model{1000, 2000};
  const int64_t one_probe = 3 * (2 + 1) * 64 * 64 * 4;  // L (n + np) d^2 floats
  auto host = parts(coupling::estimate_measurement_memory(layout, options, model, c10::kCPU, true).host_parts);
  EXPECT_EQ(host.at("model"), 1000);
  EXPECT_EQ(host.at("training state"), 2000);
  EXPECT_EQ(host.at("Jacobians"), one_probe);
  EXPECT_EQ(host.at("residual states"), 2 * 2 * 16 * 4 * 64 * 4);
  // The largest coupling set is a token's 3 blocks (or the context pair's): the fetched Jacobians
  // and a chunk of its 3 rows, [3, 3, K, K] and [3, d, 3 K].
  EXPECT_EQ(host.at("coupling chunks"), one_probe + 3 * 3 * (64 + 3 * 8) * 8 * 4);
  EXPECT_EQ(host.at("spectra"), 4 * (8 + 20) * 64 * 4);  // auto at 4 K <= d: randomized, K + p vectors
  options.spectrum = coupling::SpectrumMethod::kExact;
  host = parts(coupling::estimate_measurement_memory(layout, options, model, c10::kCPU, true).host_parts);
  EXPECT_EQ(host.at("spectra"), 4 * 64 * 64 * 4);  // a d x d SVD's copies

  options.jacobian_memory_bytes = one_probe / 4;  // spilled: a quarter held
  host = parts(coupling::estimate_measurement_memory(layout, options, model, c10::kCPU, true).host_parts);
  EXPECT_EQ(host.at("Jacobians"), one_probe / 4);

  // On a CUDA device nothing is spilled, and the measurement's tensors are the device's.
  const auto cuda = coupling::estimate_measurement_memory(layout, options, model, c10::Device(c10::kCUDA, 0), true);
  EXPECT_EQ(parts(cuda.device_parts).at("Jacobians"), one_probe);
  EXPECT_EQ(parts(cuda.host_parts).count("Jacobians"), 0u);
  EXPECT_GT(cuda.host_bytes(), 0);

  // Matrix-free: the frames of each Jacobian, never its d^2 entries.
  auto matrix_free = layout;
  matrix_free.matrix_free = true;
  host = parts(coupling::estimate_measurement_memory(matrix_free, options, model, c10::kCPU, true).host_parts);
  EXPECT_EQ(host.at("Jacobians"), 2 * 9 * (8 + options.randomized.oversample) * 64 * 4);
  EXPECT_EQ(host.at("coupling chunks"), 0);

  // The generic Jacobian replicates whole sequences: a larger workspace than the token-local one.
  const auto generic = parts(coupling::estimate_measurement_memory(layout, {}, model, c10::kCPU, false).host_parts);
  EXPECT_GT(generic.at("Jacobian workspace"),
            parts(coupling::estimate_measurement_memory(layout, {}, model, c10::kCPU, true).host_parts)
                .at("Jacobian workspace"));
}

TEST(MemoryEstimate, CheckRefusesBeyondTheLimitCountingEveryRankOnTheHost) {
  const auto estimate = coupling::estimate_measurement_memory(small_layout(), {}, {}, c10::kCPU, true);
  const int64_t limit = 2 * estimate.host_bytes();
  EXPECT_NO_THROW(coupling::check_memory(estimate, c10::kCPU, 1, limit, "lower it"));
  EXPECT_NO_THROW(coupling::check_memory(estimate, c10::kCPU, 2, limit, "lower it"));
  try {
    coupling::check_memory(estimate, c10::kCPU, 3, limit, "lower it");
    FAIL() << "3 ranks of half the limit each fit";
  } catch (const coupling::ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("x 3 ranks on this host"), std::string::npos) << message;
    EXPECT_NE(message.find("(--max-memory): lower it"), std::string::npos) << message;
    EXPECT_NE(message.find(estimate.str()), std::string::npos) << message;
  }
  const auto available = coupling::available_host_memory();
  ASSERT_TRUE(available.has_value());  // Linux has /proc/meminfo
  EXPECT_GT(available->bytes, 0);
  EXPECT_EQ(coupling::available_host_memory(1)->source, "--max-memory");
  EXPECT_FALSE(coupling::available_device_memory(c10::kCPU).has_value());
}

TEST(MemorySize, BinaryUnitsAndOneLineRefusals) {
  EXPECT_EQ(coupling::parse_memory_size("4G", "--max-memory"), int64_t{4} << 30);
  EXPECT_EQ(coupling::parse_memory_size("512m", "--max-memory"), 512 * kMiB);
  EXPECT_EQ(coupling::parse_memory_size("1.5GiB", "--max-memory"), 3 * (int64_t{1} << 29));
  EXPECT_EQ(coupling::parse_memory_size("2048K", "--max-memory"), 2 * kMiB);
  EXPECT_EQ(coupling::parse_memory_size("4 GB", "--max-memory"), int64_t{4} << 30);
  EXPECT_EQ(coupling::parse_memory_size("1000000", "--max-memory"), 1000000);
  EXPECT_EQ(coupling::parse_memory_size("1T", "--max-memory"), int64_t{1} << 40);
  for (const char* bad : {"", "0", "-1G", "4X", "G", "4G extra", "nan", "4GG", "1e30T"}) {
    try {
      coupling::parse_memory_size(bad, "--max-memory");
      ADD_FAILURE() << "'" << bad << "' was taken";
    } catch (const coupling::ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--max-memory '" + std::string(bad) + "': give a memory size", 0), 0u)
          << e.what();
    }
  }
}

}  // namespace
