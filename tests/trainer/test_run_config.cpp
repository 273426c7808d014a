// Run configuration: TOML round trip through the --config reader, and resume merging rules.
#include "coupling/error.h"
#include "trainer/loop/files.h"
#include "trainer/loop/run_config.h"
#include "trainer_support.h"

#include <gtest/gtest.h>

#include <cmath>

namespace {

using test_support::TempDir;

TEST(RunConfig, TomlRoundTrip) {
  TempDir dir;
  trainer::GptRunConfig config;
  config.train.data = "some \"quoted\" path\\file.txt";
  config.train.lr = 1.0 / 3.0;
  config.train.steps = 77;
  config.model.d_model = 48;
  config.model.dropout = 0.125;
  trainer::write_file_atomic(dir.file("config.toml"), trainer::to_toml(config));
  const auto back = trainer::read_config_file(dir.file("config.toml"));
  EXPECT_EQ(back.train.data, config.train.data);
  EXPECT_EQ(back.train.lr, config.train.lr);  // exact: written with round-trip precision
  EXPECT_EQ(back.train.steps, 77);
  EXPECT_EQ(back.model.d_model, 48);
  EXPECT_EQ(back.model.dropout, 0.125);
  EXPECT_EQ(trainer::to_toml(back), trainer::to_toml(config));

  config.train.data = "it's \"here\"";
  trainer::write_file_atomic(dir.file("config.toml"), trainer::to_toml(config));
  EXPECT_EQ(trainer::read_config_file(dir.file("config.toml")).train.data, config.train.data);
  // Negative zero keeps its sign (fmt writes "-0", the TOML integer 0; fuzz/regressions/config/).
  config.train.lr = -0.0;
  trainer::write_file_atomic(dir.file("config.toml"), trainer::to_toml(config));
  EXPECT_TRUE(std::signbit(trainer::read_config_file(dir.file("config.toml")).train.lr));
}

TEST(RunConfig, VitTomlRoundTripAndOwnDefaults) {
  TempDir dir;
  trainer::VitRunConfig config;
  EXPECT_EQ(config.train.out, "runs/vit");
  EXPECT_EQ(config.coupling.tokens, "cls,center");
  config.model.patch = 4;
  config.augment = "crop+flip";
  trainer::write_file_atomic(dir.file("vit.toml"), trainer::to_toml(config));
  const auto back = trainer::read_config_file<trainer::VitRunConfig>(dir.file("vit.toml"));
  EXPECT_EQ(back.model.patch, 4);
  EXPECT_EQ(back.augment, "crop+flip");
  EXPECT_EQ(trainer::to_toml(back), trainer::to_toml(config));
  // A GPT config file is not a ViT one: its keys are unknown there.
  trainer::write_file_atomic(dir.file("gpt.toml"), trainer::to_toml(trainer::GptRunConfig{}));
  EXPECT_THROW(trainer::read_config_file<trainer::VitRunConfig>(dir.file("gpt.toml")), coupling::ConfigError);
  config.augment = "rotate";
  EXPECT_THROW(config.validate(), coupling::ConfigError);
}

TEST(RunConfig, TomlEscapesAreTheStandardsBothWays) {
  TempDir dir;
  // Hand-written TOML: a basic string's escapes are decoded, a literal string is taken as it is.
  test_support::write_text(dir.file("escapes.toml"),
                           "data = \"C:\\\\corpus\\\\it's \\\"x\\\".txt\"\nout = 'runs\\new'\nlr = 1e-3\nsteps = 5\n");
  const auto read = trainer::read_config_file(dir.file("escapes.toml"));
  EXPECT_EQ(read.train.data, "C:\\corpus\\it's \"x\".txt");
  EXPECT_EQ(read.train.out, "runs\\new");
  EXPECT_EQ(read.train.lr, 1e-3);
  EXPECT_EQ(read.train.steps, 5);
  // Every character a path can hold survives a write and a read.
  trainer::GptRunConfig config;
  config.train.data = "a\\b'c\"d\te\nf\x01g \u00e9";
  trainer::write_file_atomic(dir.file("config.toml"), trainer::to_toml(config));
  EXPECT_EQ(trainer::read_config_file(dir.file("config.toml")).train.data, config.train.data);
}

/// The message of the ConfigError reading `text` as a GPT config file throws ("" if none).
std::string config_error(const std::string& text) {
  TempDir dir;
  test_support::write_text(dir.file("c.toml"), text);
  try {
    trainer::read_config_file(dir.file("c.toml"));
  } catch (const coupling::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(RunConfig, BadConfigFilesNameTheLineAndTheFault) {
  EXPECT_NE(config_error("steps = 3\nlearning-rate = 0.1\n").find("line 2: 'learning-rate' is not an option"),
            std::string::npos);
  EXPECT_NE(config_error("steps = \"many\"\n").find("line 1: steps must be an integer"), std::string::npos);
  EXPECT_NE(config_error("lr = 'fast'\n").find("lr must be a number"), std::string::npos);
  EXPECT_NE(config_error("data = 3\n").find("data must be a string"), std::string::npos);
  EXPECT_NE(config_error("steps = 3.5\n").find("steps must be an integer"), std::string::npos);
  EXPECT_NE(config_error("\n\ndata = \"unterminated\n").find("line 3"), std::string::npos);
  EXPECT_NE(config_error("[train]\nsteps = 3\n").find("'train' is not an option"), std::string::npos);
  EXPECT_EQ(config_error("lr = 1\n"), "");  // an integer is a number
}

TEST(RunConfig, UnknownKeyIsAnError) {
  TempDir dir;
  test_support::write_text(dir.file("bad.toml"), "steps = 3\nlearning-rate = 0.1\n");
  EXPECT_THROW(trainer::read_config_file(dir.file("bad.toml")), coupling::ConfigError);
  EXPECT_THROW(trainer::read_config_file(dir.file("missing.toml")), coupling::ConfigError);
}

TEST(RunConfig, ResumeKeepsCheckpointValuesAndAcceptsBookkeepingChanges) {
  trainer::GptRunConfig saved;
  saved.train.lr = 0.01;
  saved.train.log_every = 10;
  trainer::GptRunConfig requested;  // defaults differ from saved.lr, but lr was not given explicitly
  requested.train.log_every = 3;
  requested.train.threads = 1;
  const auto merged = trainer::merge_for_resume(saved, requested, {"log-every", "threads"});
  EXPECT_EQ(merged.train.lr, 0.01);
  EXPECT_EQ(merged.train.log_every, 3);
  EXPECT_EQ(merged.train.threads, 1);
}

TEST(RunConfig, ResumeRejectsConflictingModelFlags) {
  trainer::GptRunConfig saved;
  trainer::GptRunConfig requested;
  requested.model.d_model = saved.model.d_model * 2;
  try {
    trainer::merge_for_resume(saved, requested, {"d-model"});
    FAIL() << "conflict not detected";
  } catch (const coupling::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--d-model"), std::string::npos) << e.what();
  }
  // The same value given explicitly is not a conflict.
  requested.model.d_model = saved.model.d_model;
  EXPECT_NO_THROW(trainer::merge_for_resume(saved, requested, {"d-model"}));
}

TEST(RunConfig, ValidationNamesTheFlag) {
  trainer::GptRunConfig config;
  config.model.d_model = 100;
  config.model.heads = 3;
  try {
    config.validate();
    FAIL() << "bad heads accepted";
  } catch (const coupling::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("not divisible by --heads"), std::string::npos) << e.what();
  }
  config = {};
  config.train.steps = 0;
  EXPECT_THROW(config.validate(), coupling::ConfigError);
}

}  // namespace
