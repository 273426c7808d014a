// Reference check (llm.c style): an independent PyTorch re-implementation of the GPT written from
// docs/architecture.md, and of the measurements from docs/metrics.md (tests/python/
// gpt_reference.py), must reproduce this model's logits and its coupling, singular values, LSS
// and layer linearity (numpy's least squares) from the exported model.safetensors.
#include "coupling/engine/measurement.h"
#include "test_paths.h"
#include "trainer/loop/checkpoint.h"
#include "trainer/models/gpt.h"
#include "trainer/models/transformer_adapter.h"
#include "trainer_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/serialize.h>

#include <cstdlib>
#include <fstream>

namespace {

void save_tensor(const at::Tensor& tensor, const std::string& path) {
  const auto bytes = torch::pickle_save(tensor);
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(GptReference, PythonReimplementationReproducesLogitsAndMeasurements) {
  test_support::TempDir dir;
  auto model = test_support::perturbed_gpt(5, test_support::gpt_config(24, 48, 3, 4), 0.05);
  model->eval();
  auto idx = at::randint(256, {3, 20}, at::kLong);  // 60 tokens >= d + 1: layer linearity is defined
  save_tensor(idx, dir.file("tokens.pt"));
  save_tensor(model->forward(idx).detach(), dir.file("logits.pt"));
  trainer::save_model_safetensors(*model, dir.file("model.safetensors"));

  trainer::GptAdapter adapter(model);
  coupling::MeasurementOptions options;
  options.k_grid = {4};
  options.spectrum = coupling::SpectrumMethod::kExact;  // the reference uses a full SVD
  const auto m = coupling::measure(adapter, idx, options);
  // Last token, ujv, norm normalisation, K = 4: [B, L, L]; singular values [B, L, 4]; LSS [B].
  save_tensor(m.depth_coupling.select(1, 0).select(1, 0).select(1, 0).select(1, 0).contiguous(), dir.file("depth.pt"));
  save_tensor(m.singular_values.select(1, 0).contiguous(), dir.file("sigma.pt"));
  save_tensor(m.line_shape_score.select(1, 0).contiguous(), dir.file("lss.pt"));
  ASSERT_TRUE(at::isfinite(m.layer_linearity).all().item<bool>());
  save_tensor(m.layer_linearity, dir.file("linearity.pt"));
  const std::string command = std::string(test_paths::kPython) + " " + test_paths::kTestSourceDir +
                              "/python/gpt_reference.py " + dir.path().string() + " --heads 4 --coupling";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

}  // namespace
