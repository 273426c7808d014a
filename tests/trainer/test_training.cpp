// The training loop end to end on a tiny corpus: learning, resume determinism, and bad input.
#include "coupling/error.h"
#include "trainer/loop/checkpoint.h"
#include "trainer/loop/divergence_error.h"
#include "trainer/loop/gpt_trainer.h"
#include "trainer_support.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

using test_support::TempDir;
using test_support::tiny_run;
namespace fs = std::filesystem;

/// The (step, loss) rows of a run's train_log.csv.
std::vector<std::pair<int64_t, double>> read_losses(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::pair<int64_t, double>> rows;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string step, loss;
    std::getline(fields, step, ',');
    std::getline(fields, loss, ',');
    rows.emplace_back(std::stoll(step), std::stod(loss));
  }
  return rows;
}

TEST(Training, LossDecreasesOnTinyCorpus) {
  TempDir dir;
  const auto config = tiny_run(test_support::write_tiny_corpus(dir), dir.file("run"));
  const auto summary = trainer::train_gpt(config, false);
  const auto losses = read_losses(dir.file("run/train_log.csv"));
  ASSERT_EQ(losses.size(), 40u);
  EXPECT_GT(losses.front().second, 5.0);  // about log(256) = 5.55 at initialisation
  double last_five = 0;
  for (size_t i = losses.size() - 5; i < losses.size(); ++i) last_five += losses[i].second / 5.0;
  EXPECT_LT(last_five, losses.front().second - 2.0);
  EXPECT_LT(summary.metric("val_loss"), losses.front().second - 2.0);
  EXPECT_EQ(summary.final_step, 40);
  EXPECT_TRUE(fs::exists(dir.file("run/summary.json")));
  EXPECT_TRUE(fs::exists(dir.file("run/config.toml")));
  EXPECT_TRUE(fs::exists(trainer::checkpoint_dir(dir.file("run"), 20) + "/model.safetensors"));
  EXPECT_TRUE(fs::exists(trainer::checkpoint_dir(dir.file("run"), 40) + "/model.safetensors"));
}

TEST(Training, ResumedRunReproducesUninterruptedLossCurve) {
  TempDir dir;
  const auto data = test_support::write_tiny_corpus(dir);
  auto config = tiny_run(data, dir.file("straight"));
  config.model.dropout = 0.1;  // exercises the LibTorch RNG state too
  const auto straight = trainer::train_gpt(config, false);

  config.train.out = dir.file("interrupted");
  trainer::train_gpt(config, false);
  // Interrupt after step 20: drop the final checkpoint and summary, as a crash would.
  fs::remove_all(trainer::checkpoint_dir(config.train.out, 40));
  fs::remove(dir.file("interrupted/summary.json"));
  const auto resumed = trainer::train_gpt(trainer::config_for_resume(config.train.out, config, {}), true);

  const auto a = read_losses(dir.file("straight/train_log.csv"));
  const auto b = read_losses(dir.file("interrupted/train_log.csv"));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_NEAR(a[i].second, b[i].second, 1e-5) << "step " << a[i].first;
  }
  EXPECT_NEAR(straight.metric("val_loss"), resumed.metric("val_loss"), 1e-5);
}

TEST(Training, BadInputsFailBeforeWritingAnything) {
  TempDir dir;
  const auto data = test_support::write_tiny_corpus(dir);
  auto expect_error = [&](trainer::GptRunConfig config, bool resume, const std::string& fragment) {
    try {
      trainer::train_gpt(config, resume);
      ADD_FAILURE() << "no error, expected: " << fragment;
    } catch (const coupling::Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(config.train.out + "/config.toml")) << fragment;
  };
  auto config = tiny_run(dir.file("missing.txt"), dir.file("a"));
  expect_error(config, false, "cannot read data file");
  config = tiny_run(test_support::write_text(dir.file("short.txt"), "abc"), dir.file("b"));
  expect_error(config, false, "too short for --context");
  config = tiny_run(data, dir.file("c"));
  config.model.heads = 3;
  expect_error(config, false, "not divisible by --heads");
  config = tiny_run(data, dir.file("d"));
  expect_error(config, true, "no checkpoint");
  // An output path under a regular file cannot be created.
  test_support::write_text(dir.file("plainfile"), "x");
  config = tiny_run(data, dir.file("plainfile/run"));
  expect_error(config, false, "cannot create output directory");
}

/// A finished 2-step run in dir/run, and its configuration.
trainer::GptRunConfig finished_two_step_run(const TempDir& dir) {
  auto config = tiny_run(test_support::write_tiny_corpus(dir), dir.file("run"));
  config.train.steps = 2;
  trainer::train_gpt(config, false);
  return config;
}

TEST(Training, RefusesToOverwriteAnExistingRun) {
  TempDir dir;
  const auto config = finished_two_step_run(dir);
  EXPECT_THROW(trainer::train_gpt(config, false), coupling::ConfigError);
}

TEST(Training, ResumeWithConflictingFlagIsRejected) {
  TempDir dir;
  const auto config = finished_two_step_run(dir);
  auto requested = config;
  requested.train.lr = 0.5;
  EXPECT_THROW(trainer::config_for_resume(config.train.out, requested, {"lr"}), coupling::ConfigError);
  requested.train.out = dir.file("elsewhere");
  EXPECT_THROW(trainer::config_for_resume(config.train.out, requested, {"out"}), coupling::ConfigError);
}

TEST(Training, OverrideChangesOnlyTheOptimisationAndSaysWhat) {
  TempDir dir;
  const auto config = finished_two_step_run(dir);
  auto requested = config;
  requested.train.lr = 1e-3;
  requested.train.warmup = 50;
  const auto resumed = trainer::config_for_resume(config.train.out, requested, {"lr", "warmup"}, true);
  EXPECT_EQ(resumed.train.lr, 1e-3);
  EXPECT_EQ(resumed.train.warmup, 50);
  EXPECT_EQ(resumed.train.resume_overrides, "lr 0.003 -> 0.001, warmup 5 -> 50");
  requested.model.layers = 3;  // the model is not the optimisation: never overridden
  EXPECT_THROW(trainer::config_for_resume(config.train.out, requested, {"layers"}, true), coupling::ConfigError);
}

TEST(Training, NonFiniteLossStopsWithTheStep) {
  TempDir dir;
  auto config = tiny_run(test_support::write_tiny_corpus(dir), dir.file("run"));
  config.train.lr = 1e30;
  config.train.warmup = 0;
  config.train.grad_clip = 0.0;
  config.train.ckpt_every = 1;
  try {
    trainer::train_gpt(config, false);
    FAIL() << "a learning rate of 1e30 did not diverge";
  } catch (const trainer::DivergenceError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("at step "), std::string::npos) << message;
    const int64_t step = std::stoll(message.substr(message.find("at step ") + 8));
    // Nothing from the diverged step (or later) was saved.
    EXPECT_FALSE(fs::exists(trainer::checkpoint_dir(config.train.out, step + 1)));
    EXPECT_FALSE(fs::exists(config.train.out + "/summary.json"));
  }
}

}  // namespace
