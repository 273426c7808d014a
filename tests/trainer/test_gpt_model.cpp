// The GPT model: shapes, causality, weight tying, the residual-branch API and parameter names.
#include "coupling/error.h"
#include "trainer/models/gpt.h"
#include "trainer_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

namespace {

trainer::GptConfig small_config() { return test_support::gpt_config(12, 32, 3, 4); }

at::Tensor random_tokens(int64_t batch, int64_t tokens, uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  return at::randint(256, {batch, tokens}, generator, at::kLong);
}

TEST(GptModel, ShapesOfLogitsAndResidualStates) {
  at::manual_seed(0);
  trainer::Gpt model(small_config());
  auto idx = random_tokens(3, 10, 1);
  EXPECT_EQ(model->forward(idx).sizes(), (at::IntArrayRef{3, 10, 256}));
  auto states = model->residual_states(idx);
  ASSERT_EQ(states.size(), 4u);
  for (const auto& x : states) EXPECT_EQ(x.sizes(), (at::IntArrayRef{3, 10, 32}));
  EXPECT_EQ(model->num_blocks(), 3);
}

TEST(GptModel, ForwardEqualsEmbedBlocksHead) {
  at::manual_seed(0);
  trainer::Gpt model(small_config());
  auto idx = random_tokens(2, 12, 2);
  auto states = model->residual_states(idx);
  EXPECT_TRUE(at::allclose(model->head(states.back()), model->forward(idx), 1e-5, 1e-6));
}

TEST(GptModel, BlockIsSkipPlusResidualBranch) {
  at::manual_seed(0);
  trainer::Gpt model(small_config());
  auto x = at::randn({2, 7, 32});
  auto block = model->block(1);
  EXPECT_TRUE(at::allclose(block->forward(x), x + block->residual_branch(x), 1e-6, 1e-6));
  // The branch is not the identity and not zero: subtracting the skip matters.
  EXPECT_GT((block->residual_branch(x)).abs().max().item<double>(), 1e-4);
}

TEST(GptModel, IsCausal) {
  at::manual_seed(0);
  trainer::Gpt model(small_config());
  auto idx = random_tokens(1, 12, 3);
  auto changed = idx.clone();
  const int64_t t = 5;
  changed.narrow(1, t + 1, 12 - t - 1).fill_(7);  // change every token after t
  auto before = model->forward(idx);
  auto after = model->forward(changed);
  EXPECT_TRUE(at::equal(before.narrow(1, 0, t + 1), after.narrow(1, 0, t + 1)));
  EXPECT_FALSE(at::allclose(before.narrow(1, t + 1, 1), after.narrow(1, t + 1, 1)));
}

TEST(GptModel, HeadIsTiedToTokenEmbedding) {
  at::manual_seed(0);
  trainer::Gpt model(small_config());
  for (const auto& item : model->named_parameters()) {
    EXPECT_EQ(item.key().find("head"), std::string::npos) << "untied head parameter " << item.key();
  }
  // Changing the embedding of token 9 changes its logit through the head, even with a fixed final state.
  auto x = at::randn({1, 1, 32});
  auto before = model->head(x).select(-1, 9).item<double>();
  {
    at::NoGradGuard no_grad;
    model->wte->weight[9].mul_(2.0);
  }
  auto after = model->head(x).select(-1, 9).item<double>();
  EXPECT_NEAR(after, 2.0 * before, 1e-5 * std::abs(before) + 1e-7);
}

TEST(GptModel, ParameterNamesMatchArchitectureDoc) {
  trainer::Gpt model(small_config());
  std::set<std::string> names;
  for (const auto& item : model->named_parameters()) names.insert(item.key());
  std::set<std::string> expected = {"wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"};
  for (int l = 0; l < 3; ++l) {
    for (const char* suffix :
         {"ln1.weight", "ln1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
          "ln2.weight", "ln2.bias", "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias"}) {
      expected.insert("blocks." + std::to_string(l) + "." + suffix);
    }
  }
  EXPECT_EQ(names, expected);
  EXPECT_EQ(model->named_buffers().size(), 0u);
}

TEST(GptModel, RejectsBadShapes) {
  auto config = small_config();
  config.heads = 5;
  EXPECT_THROW(trainer::Gpt{config}, coupling::ConfigError);
  trainer::Gpt model(small_config());
  EXPECT_THROW(model->forward(random_tokens(1, 13, 4)), coupling::ConfigError);
}

}  // namespace
