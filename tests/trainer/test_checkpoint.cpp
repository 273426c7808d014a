// Checkpoints: round trip of model, optimizer, RNG and trainer state; newest-checkpoint lookup;
// corrupt and incomplete checkpoints; weights.pt as pickled (name, tensor) pairs.
#include "coupling/error.h"
#include "trainer_support.h"
#include "trainer/loop/checkpoint.h"
#include "trainer/models/gpt.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace {

using test_support::TempDir;
namespace fs = std::filesystem;

trainer::GptConfig tiny_model() { return test_support::gpt_config(8, 16, 2, 2); }

/// One optimizer step so that AdamW has moment buffers to save.
void take_step(trainer::Gpt& model, torch::optim::AdamW& optimizer) {
  auto idx = at::randint(256, {2, 8}, at::kLong);
  auto loss = trainer::next_token_loss(model->forward(idx), idx);
  optimizer.zero_grad();
  loss.backward();
  optimizer.step();
}

TEST(Checkpoint, RoundTripRestoresEverything) {
  TempDir dir;
  at::manual_seed(1);
  trainer::Gpt model(tiny_model());
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-2));
  take_step(model, optimizer);
  trainer::TrainerState state{7, "rng-state-text", 1234, 5.5};
  const auto expected_next_random = [] {
    auto generator = at::detail::getDefaultCPUGenerator();
    auto saved = generator.get_state();
    auto value = at::rand({4});
    generator.set_state(saved);
    return value;
  }();
  trainer::save_checkpoint(dir.path().string(), state, *model, optimizer, "steps = 7\n");
  ASSERT_EQ(trainer::latest_checkpoint(dir.path().string()), trainer::checkpoint_dir(dir.path().string(), 7));

  // A second model and optimizer, different weights, continue identically after loading.
  at::manual_seed(2);
  trainer::Gpt restored(tiny_model());
  torch::optim::AdamW restored_optimizer(restored->parameters(), torch::optim::AdamWOptions(1e-2));
  at::rand({10});  // move the generator away from the saved state
  const auto loaded = trainer::load_checkpoint(*trainer::latest_checkpoint(dir.path().string()), *restored,
                                               restored_optimizer);
  EXPECT_EQ(loaded.step, 7);
  EXPECT_EQ(loaded.sampler_rng, "rng-state-text");
  EXPECT_EQ(loaded.tokens_seen, 1234);
  EXPECT_EQ(loaded.train_seconds, 5.5);
  EXPECT_TRUE(at::equal(at::rand({4}), expected_next_random));
  auto a = model->parameters(), b = restored->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i]));
  // Same optimizer state: the next step gives identical parameters.
  at::manual_seed(3);
  take_step(model, optimizer);
  at::manual_seed(3);
  take_step(restored, restored_optimizer);
  a = model->parameters();
  b = restored->parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i]));
}

TEST(Checkpoint, LatestPicksHighestStepAndIgnoresTemporaries) {
  TempDir dir;
  EXPECT_FALSE(trainer::latest_checkpoint(dir.path().string()).has_value());
  for (const char* name : {"step_9", "step_10", "step_2", "step_99.tmp-123", "notes"}) {
    fs::create_directories(dir.path() / "checkpoints" / name);
  }
  EXPECT_EQ(trainer::latest_checkpoint(dir.path().string()), (dir.path() / "checkpoints" / "step_10").string());
}

TEST(Checkpoint, CorruptOrIncompleteCheckpointsAreReported) {
  TempDir dir;
  trainer::Gpt model(tiny_model());
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-2));
  trainer::save_checkpoint(dir.path().string(), {3, "x", 0, 0.0}, *model, optimizer, "");
  const auto ckpt = trainer::checkpoint_dir(dir.path().string(), 3);
  const auto model_file = ckpt + "/model.pt";
  const auto size = fs::file_size(model_file);
  fs::resize_file(model_file, size / 2);
  try {
    trainer::load_checkpoint(ckpt, *model, optimizer);
    FAIL() << "truncated model.pt accepted";
  } catch (const coupling::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
  }
  fs::remove(ckpt + "/optimizer.pt");
  try {
    trainer::load_checkpoint(ckpt, *model, optimizer);
    FAIL() << "missing optimizer.pt accepted";
  } catch (const coupling::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("no optimizer.pt"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, WeightsFileIsPickledNameTensorPairs) {
  TempDir dir;
  trainer::Gpt model(tiny_model());
  trainer::save_weights_for_python(*model, dir.file("weights.pt"));
  std::ifstream in(dir.file("weights.pt"), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::map<std::string, at::Tensor> weights;
  const c10::IValue loaded = torch::pickle_load(bytes);
  for (const auto& pair : loaded.toTupleRef().elements()) {
    const auto& name_and_tensor = pair.toTupleRef().elements();
    weights[name_and_tensor.at(0).toStringRef()] = name_and_tensor.at(1).toTensor();
  }
  EXPECT_EQ(weights.size(), model->named_parameters().size());
  EXPECT_TRUE(at::equal(weights.at("wte.weight"), model->wte->weight));
  EXPECT_TRUE(at::equal(weights.at("blocks.1.mlp.fc.bias"), model->block(1)->mlp->fc->bias));
}

}  // namespace
