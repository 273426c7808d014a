// Devices: --device resolution and its errors, what this LibTorch build has (CUDA, NCCL),
// autocast scopes, and (on a machine with a CUDA device; skipped, not passed, elsewhere) the
// engine and the trainer on CUDA against the CPU. scripts/gpu_check.sh runs the *Cuda* tests.
#include "coupling/engine/device.h"
#include "coupling/engine/measurement.h"
#include "coupling/error.h"
#include "test_paths.h"
#include "trainer/loop/autocast.h"
#include "trainer/loop/checkpoint.h"
#include "trainer/loop/gpt_trainer.h"
#include "trainer/models/transformer_adapter.h"
#include "trainer/parallel/rendezvous.h"
#include "trainer_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace {

std::string error_of(const std::string& spec) {
  try {
    coupling::resolve_device(spec);
  } catch (const coupling::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Device, ResolvesCpuAndAuto) {
  EXPECT_TRUE(coupling::resolve_device("cpu").is_cpu());
  const auto automatic = coupling::resolve_device("auto");
  if (coupling::cuda_device_count() > 0) {
    EXPECT_EQ(automatic, c10::Device(c10::kCUDA, 0));
  } else {
    EXPECT_TRUE(automatic.is_cpu());
  }
}

TEST(Device, RankDeviceIsTheLocalRanksGpu) {
  EXPECT_TRUE(coupling::resolve_rank_device("cpu", 3).is_cpu());
  const int64_t gpus = coupling::cuda_device_count();
  if (gpus == 0) {
    EXPECT_TRUE(coupling::resolve_rank_device("auto", 3).is_cpu());
    EXPECT_THROW(coupling::resolve_rank_device("cuda", 0), coupling::ConfigError);
  } else {
    EXPECT_EQ(coupling::resolve_rank_device("auto", 0), c10::Device(c10::kCUDA, 0));
    EXPECT_EQ(coupling::resolve_rank_device("cuda", gpus - 1),
              c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(gpus == 1 ? 0 : gpus - 1)));
    if (gpus > 1) {
      EXPECT_THROW(coupling::resolve_rank_device("cuda", gpus), coupling::ConfigError);
    }
  }
}

TEST(Device, RejectsWhatIsNotADevice) {
  for (const std::string spec : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", ""}) {
    EXPECT_NE(error_of(spec), "") << spec;
  }
  EXPECT_NE(error_of("gpu").find("use cpu, cuda, cuda:N or auto"), std::string::npos) << error_of("gpu");
}

TEST(Device, CudaWithoutADeviceSaysWhichPartIsMissing) {
  if (coupling::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is visible";
  for (const std::string spec : {"cuda", "cuda:0", "cuda:3"}) {
    const std::string message = error_of(spec);
    const std::string expected = coupling::torch_has_cuda() ? "no CUDA device is visible" : "was built without CUDA";
    EXPECT_NE(message.find(expected), std::string::npos) << message;
    EXPECT_NE(message.find("--device " + spec), std::string::npos) << message;
  }
}

TEST(Device, BuildHasWhatCMakeFound) {
  // A CUDA LibTorch (the pip build) must have CUDA loaded and NCCL compiled in; Debian's has neither.
  EXPECT_EQ(coupling::torch_has_cuda(), test_paths::kTorchHasCuda);
  EXPECT_EQ(trainer::nccl_available(), test_paths::kTorchHasCuda);
  EXPECT_FALSE(coupling::torch_version().empty());
}

TEST(Device, BackendAutoFollowsTheDevice) {
  EXPECT_EQ(trainer::resolve_backend("auto", c10::Device(c10::kCPU)), "gloo");
  EXPECT_EQ(trainer::resolve_backend("auto", c10::Device(c10::kCUDA, 1)), "nccl");
  EXPECT_EQ(trainer::resolve_backend("gloo", c10::Device(c10::kCUDA, 0)), "gloo");
}

TEST(Device, AutocastScopeIsBf16InsideAndRestoredAfter) {
  const auto a = at::randn({8, 8}), b = at::randn({8, 8});
  {
    trainer::AutocastScope fp32("fp32", c10::Device(c10::kCPU));
    EXPECT_EQ(at::mm(a, b).scalar_type(), at::kFloat);
  }
  {
    trainer::AutocastScope bf16("bf16", c10::Device(c10::kCPU));
    EXPECT_EQ(at::mm(a, b).scalar_type(), at::kBFloat16);
  }
  EXPECT_EQ(at::mm(a, b).scalar_type(), at::kFloat);
  EXPECT_THROW(trainer::AutocastScope("fp16", c10::Device(c10::kCPU)), coupling::ConfigError);
}

// ---- on a CUDA device ---------------------------------------------------------------------------

#define SKIP_WITHOUT_CUDA() \
  if (coupling::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible"

TEST(DeviceCuda, MeasurementEqualsTheCpus) {
  SKIP_WITHOUT_CUDA();
  // Initialised on the CPU, then copied: the same weights on both devices.
  auto cpu_model = test_support::perturbed_gpt(3, test_support::gpt_config(16, 32, 3, 2), 0.02);
  auto cuda_model = test_support::perturbed_gpt(3, test_support::gpt_config(16, 32, 3, 2), 0.02);
  cuda_model->to(c10::Device(c10::kCUDA, 0));
  trainer::GptAdapter cpu_adapter(cpu_model), cuda_adapter(cuda_model);
  const auto probes = at::randint(256, {3, 16}, at::kLong);
  coupling::MeasurementOptions options;
  options.k_grid = {4, 16};
  options.spectrum = coupling::SpectrumMethod::kExact;
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {-1, 7};
  const auto on_cpu = coupling::measure(cpu_adapter, probes, options);
  const auto on_cuda = coupling::measure(cuda_adapter, probes.to(c10::Device(c10::kCUDA, 0)), options);
  EXPECT_TRUE(on_cuda.depth_coupling.device().is_cpu());  // results always come back to the CPU
  EXPECT_TRUE(at::allclose(on_cuda.depth_coupling, on_cpu.depth_coupling, 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(on_cuda.token_coupling, on_cpu.token_coupling, 1e-4, 1e-4));
  EXPECT_TRUE(at::allclose(on_cuda.singular_values, on_cpu.singular_values, 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(on_cuda.line_shape_score, on_cpu.line_shape_score, 1e-4, 1e-6));
  options.spectrum = coupling::SpectrumMethod::kRandomized;  // the same test matrices on both devices
  EXPECT_TRUE(
      at::allclose(coupling::measure(cuda_adapter, probes.to(c10::Device(c10::kCUDA, 0)), options).depth_coupling,
                   coupling::measure(cpu_adapter, probes, options).depth_coupling, 1e-3, 1e-3));
}

TEST(DeviceCuda, TrainsAndResumesOnCudaAndItsCheckpointLoadsOnTheCpu) {
  SKIP_WITHOUT_CUDA();
  test_support::TempDir dir;
  auto config = test_support::tiny_run(test_support::write_tiny_corpus(dir), dir.file("run"));
  config.train.device = "cuda";
  config.train.steps = 20;
  const auto first = trainer::train_gpt(config, false);
  EXPECT_LT(first.metric("val_loss"), 5.0);
  config.train.steps = 40;
  const auto resumed = trainer::train_gpt(config, true);
  EXPECT_EQ(resumed.final_step, 40);
  auto cpu_model = test_support::perturbed_gpt(1, config.model, 0.0);
  trainer::load_model(*trainer::latest_checkpoint(config.train.out), *cpu_model);
  for (const auto& p : cpu_model->parameters()) EXPECT_TRUE(p.device().is_cpu());
}

TEST(DeviceCuda, Bf16TrainingKeepsFp32Measurements) {
  SKIP_WITHOUT_CUDA();
  test_support::TempDir dir;
  auto config = test_support::tiny_run(test_support::write_tiny_corpus(dir), dir.file("run"));
  config.train.device = "cuda";
  config.train.precision = "bf16";
  config.train.steps = 20;
  const auto summary = trainer::train_gpt(config, false);
  EXPECT_TRUE(std::isfinite(summary.metric("val_loss")));
}

}  // namespace
