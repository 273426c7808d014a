// Checkpoints: round trip of model, optimizer, RNG and trainer state; newest-checkpoint lookup;
// corrupt, incomplete, forged and format-1 checkpoints refused by name; model.safetensors by name.
#include "coupling/error.h"
#include "coupling/formats/safetensors.h"
#include "coupling/formats/sha256.h"
#include "test_paths.h"
#include "trainer/loop/checkpoint.h"
#include "trainer/models/gpt.h"
#include "trainer_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <sys/inotify.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
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
  trainer::TrainerState state;
  state.step = 7;
  state.sampler_rng = "rng-state-text";
  state.tokens_seen = 1234;
  state.train_seconds = 5.5;
  state.data_sha256 = "d474";
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
  const auto loaded =
      trainer::load_checkpoint(*trainer::latest_checkpoint(dir.path().string()), *restored, restored_optimizer);
  EXPECT_EQ(loaded.step, 7);
  EXPECT_EQ(loaded.sampler_rng, "rng-state-text");
  EXPECT_EQ(loaded.tokens_seen, 1234);
  EXPECT_EQ(loaded.train_seconds, 5.5);
  EXPECT_EQ(loaded.data_sha256, "d474");
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
  for (const char* name : {"step_9", "step_10", "step_2", "step_99.tmp-123", "notes", "step_99999999999999999999"}) {
    fs::create_directories(dir.path() / "checkpoints" / name);
  }
  EXPECT_EQ(trainer::latest_checkpoint(dir.path().string()), (dir.path() / "checkpoints" / "step_10").string());
}

/// The message of the CheckpointError that loading checkpoint `dir` into a fresh tiny model throws.
std::string load_error(const std::string& dir) {
  trainer::Gpt model(tiny_model());
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-2));
  try {
    trainer::load_checkpoint(dir, *model, optimizer);
  } catch (const coupling::CheckpointError& e) {
    return e.what();
  }
  return "";
}

/// Replaces `file` of checkpoint `dir` by `bytes` and records them in its manifest, as a forger would.
void forge(const std::string& dir, const std::string& file, const std::string& bytes) {
  test_support::write_text(dir + "/" + file, bytes);
  std::string manifest = test_support::read_bytes(dir + "/manifest.json");
  const auto entry = manifest.find("\"" + file + "\"");
  const auto bytes_at = manifest.find("\"bytes\": ", entry) + 9;
  manifest.replace(bytes_at, manifest.find(',', bytes_at) - bytes_at, std::to_string(bytes.size()));
  const auto sha_at = manifest.find("\"sha256\": \"", entry) + 11;
  manifest.replace(sha_at, 64, coupling::sha256_hex(bytes));
  test_support::write_text(dir + "/manifest.json", manifest);
}

/// How often each file in `dir` was opened while `action` ran (inotify's IN_OPEN events).
std::map<std::string, int> opens_during(const std::string& dir, const std::function<void()>& action) {
  const int watcher = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  EXPECT_GE(watcher, 0);
  EXPECT_GE(::inotify_add_watch(watcher, dir.c_str(), IN_OPEN), 0);
  action();
  std::map<std::string, int> opens;
  alignas(inotify_event) char buffer[1 << 16];
  for (ssize_t got; (got = ::read(watcher, buffer, sizeof buffer)) > 0;) {
    for (ssize_t at = 0; at < got;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      if (event->len > 0) ++opens[event->name];
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
  ::close(watcher);
  return opens;
}

// Hash and load the same bytes: each file is opened once, hashed and parsed from memory, so a file
// swapped between the check and the load cannot be loaded (a loader that verified by path and
// opened the file again to load it had that window).
TEST(Checkpoint, EachFileIsOpenedOnceSoWhatIsLoadedIsWhatWasHashed) {
  TempDir dir;
  trainer::Gpt model(tiny_model());
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-2));
  take_step(model, optimizer);
  trainer::save_checkpoint(dir.path().string(), trainer::TrainerState{}, *model, optimizer, "steps = 1\n");
  const auto checkpoint = trainer::checkpoint_dir(dir.path().string(), 0);
  const auto loaded = opens_during(checkpoint, [&] { trainer::load_checkpoint(checkpoint, *model, optimizer); });
  for (const char* name :
       {"manifest.json", "model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json"}) {
    EXPECT_EQ(loaded.count(name) ? loaded.at(name) : 0, 1) << name;
  }
  const auto model_only = opens_during(checkpoint, [&] { trainer::load_model(checkpoint, *model); });
  EXPECT_EQ(model_only.count("model.safetensors") ? model_only.at("model.safetensors") : 0, 1);
  const auto config =
      opens_during(checkpoint, [&] { EXPECT_EQ(trainer::read_checkpoint_config(checkpoint), "steps = 1\n"); });
  EXPECT_EQ(config.count("config.toml") ? config.at("config.toml") : 0, 1);
}

TEST(Checkpoint, CorruptIncompleteOrForeignCheckpointsAreRefusedByName) {
  TempDir dir;
  trainer::Gpt model(tiny_model());
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(1e-2));
  take_step(model, optimizer);
  const auto save = [&](int64_t step) {
    trainer::TrainerState state;
    state.step = step;
    state.sampler_rng = "x";
    trainer::save_checkpoint(dir.path().string(), state, *model, optimizer, "");
    return trainer::checkpoint_dir(dir.path().string(), step);
  };
  ASSERT_EQ(load_error(save(1)), "");

  // One flipped bit anywhere in a file fails its SHA-256, before anything is loaded.
  for (const std::string file : {"model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json"}) {
    const auto ckpt = save(2);
    std::string bytes = test_support::read_bytes(ckpt + "/" + file);
    bytes[bytes.size() / 2] ^= 1;
    test_support::write_text(ckpt + "/" + file, bytes);
    EXPECT_NE(load_error(ckpt).find("is corrupt: " + file + " does not match its size and SHA-256"), std::string::npos)
        << load_error(ckpt);
  }
  auto ckpt = save(3);
  fs::remove(ckpt + "/optimizer.safetensors");
  EXPECT_NE(load_error(ckpt).find("is incomplete (no optimizer.safetensors)"), std::string::npos) << load_error(ckpt);
  fs::remove(ckpt + "/manifest.json");
  EXPECT_NE(load_error(ckpt).find("is incomplete (no manifest.json)"), std::string::npos) << load_error(ckpt);

  // Files that pass a forged manifest are still checked as data.
  ckpt = save(4);
  forge(ckpt, "state.json", "{\"step\": \"four\"}");
  EXPECT_NE(load_error(ckpt).find("has a malformed state.json"), std::string::npos) << load_error(ckpt);
  ckpt = save(5);
  forge(ckpt, "model.safetensors", test_support::read_bytes(ckpt + "/model.safetensors").substr(0, 200));
  EXPECT_NE(load_error(ckpt).find("model.safetensors"), std::string::npos) << load_error(ckpt);
  ckpt = save(6);
  trainer::Gpt wider(test_support::gpt_config(8, 32, 2, 2));
  trainer::save_model_safetensors(*wider, ckpt + "/wider");
  forge(ckpt, "model.safetensors", test_support::read_bytes(ckpt + "/wider"));
  EXPECT_NE(load_error(ckpt).find("holds another model: wte.weight has shape [256, 32] there and [256, 16]"),
            std::string::npos)
      << load_error(ckpt);
  ckpt = save(8);
  forge(ckpt, "rng.safetensors", coupling::safetensors::serialize({{"torch_rng", at::zeros({1, 7}, at::kByte)}}));
  EXPECT_NE(load_error(ckpt).find("has a malformed rng.safetensors"), std::string::npos) << load_error(ckpt);
  ckpt = save(9);
  std::string state = test_support::read_bytes(ckpt + "/state.json");
  forge(ckpt, "state.json", state.replace(state.find("\"step\": 9"), 9, "\"step\": 3"));
  EXPECT_NE(load_error(ckpt).find("holds step 3 in its state.json"), std::string::npos) << load_error(ckpt);

  // A checkpoint is loaded whole or not at all: a bad optimizer file leaves the model as it was.
  ckpt = save(10);
  forge(ckpt, "optimizer.safetensors",
        coupling::safetensors::serialize({{"ghost.step", at::scalar_tensor(int64_t{1}, at::kLong)},
                                          {"ghost.exp_avg", at::zeros({1})},
                                          {"ghost.exp_avg_sq", at::zeros({1})}},
                                         {{"format", "adamw-by-parameter-name-1"}}));
  trainer::Gpt untouched(tiny_model());
  torch::optim::AdamW untouched_optimizer(untouched->parameters(), torch::optim::AdamWOptions(1e-2));
  const at::Tensor before = untouched->wte->weight.clone();
  EXPECT_THROW(trainer::load_checkpoint(ckpt, *untouched, untouched_optimizer), coupling::CheckpointError);
  EXPECT_TRUE(at::equal(untouched->wte->weight, before));
  EXPECT_TRUE(untouched_optimizer.state().empty());

  ckpt = save(7);
  std::string manifest = test_support::read_bytes(ckpt + "/manifest.json");
  manifest.replace(manifest.find("\"version\": 3"), 12, "\"version\": 4");
  test_support::write_text(ckpt + "/manifest.json", manifest);
  EXPECT_NE(load_error(ckpt).find("has format 4 and this libcoupling reads formats 2 to 3"), std::string::npos)
      << load_error(ckpt);
}

TEST(Checkpoint, FormatOneIsRefusedWithoutBeingOpened) {
  TempDir dir;
  fs::copy(std::string(test_paths::kTestSourceDir) + "/fixtures/checkpoint-format-1/run/checkpoints/step_2", dir.path(),
           fs::copy_options::recursive);
  // A TorchScript archive is never parsed: garbage in its place gives the same one-line refusal.
  const std::string expected = "has format 1 (TorchScript archives";
  EXPECT_NE(load_error(dir.path().string()).find(expected), std::string::npos) << load_error(dir.path().string());
  test_support::write_text(dir.file("model.pt"), "not an archive");
  EXPECT_NE(load_error(dir.path().string()).find(expected), std::string::npos);
  trainer::Gpt model(tiny_model());
  EXPECT_THROW(trainer::load_model(dir.path().string(), *model), coupling::CheckpointError);
}

TEST(Checkpoint, ModelFileIsSafetensorsByParameterName) {
  TempDir dir;
  trainer::Gpt model(tiny_model());
  trainer::save_model_safetensors(*model, dir.file("model.safetensors"));
  const coupling::safetensors::SafetensorsFile file(dir.file("model.safetensors"));
  EXPECT_EQ(file.header().tensors.size(), model->named_parameters().size() + model->named_buffers().size());
  EXPECT_TRUE(at::equal(file.tensor("wte.weight"), model->wte->weight));
  EXPECT_TRUE(at::equal(file.tensor("blocks.1.mlp.fc.bias"), model->block(1)->mlp->fc->bias));
}

}  // namespace
