// Block Jacobians against row-by-row autograd on a tiny GPT block: t1 = t2, t1 < t2, chunking,
// causal zeros, a non-causal block, and no side effects on parameters or their gradients.
#include "coupling/engine/jacobian.h"
#include "coupling/error.h"
#include "engine_support.h"
#include "trainer/models/block_adapter.h"
#include "trainer/models/gpt.h"
#include "trainer/models/transformer_adapter.h"
#include "trainer_support.h"

#include <gtest/gtest.h>

namespace {

trainer::Gpt tiny_gpt() {
  auto model = test_support::perturbed_gpt(11, test_support::gpt_config(8, 16, 2, 2), 0.1);
  model->eval();
  return model;
}

TEST(Jacobian, MatchesRowByRowAutogradForDiagonalAndContextPairs) {
  auto model = tiny_gpt();
  trainer::GptAdapter adapter(model);
  const auto x = at::randn({8, 16});
  auto branch = [&](const at::Tensor& in) { return model->block(1)->residual_branch(in); };
  for (int64_t t2 : {7, 4}) {
    const std::vector<int64_t> inputs = {t2, 0, t2 - 1};
    const auto j = coupling::jacobians_at_output(adapter, 1, x, t2, inputs);
    ASSERT_EQ(j.sizes(), (at::IntArrayRef{3, 16, 16}));
    for (size_t r = 0; r < inputs.size(); ++r) {
      const auto reference = engine_support::brute_force_jacobian(branch, x, inputs[r], t2);
      EXPECT_TRUE(at::allclose(j[static_cast<int64_t>(r)], reference, 1e-5, 1e-6))
          << "t1=" << inputs[r] << " t2=" << t2;
      EXPECT_GT(reference.abs().max().item<double>(), 1e-3);  // a real, non-zero Jacobian
    }
  }
}

TEST(Jacobian, CausalZerosAreExactlyZeroAndNeverRequested) {
  auto model = tiny_gpt();
  trainer::GptAdapter adapter(model);
  const auto x = at::randn({8, 16});
  auto branch = [&](const at::Tensor& in) { return model->block(0)->residual_branch(in); };
  EXPECT_TRUE(at::equal(engine_support::brute_force_jacobian(branch, x, 6, 3), at::zeros({16, 16})));
  EXPECT_THROW(coupling::jacobians_at_output(adapter, 0, x, 3, {6}), coupling::ConfigError);
  EXPECT_THROW(coupling::jacobians_at_output(adapter, 2, x, 3, {1}), coupling::ConfigError);
  EXPECT_THROW(coupling::jacobians_at_output(adapter, 0, x, 8, {1}), coupling::ConfigError);
}

TEST(Jacobian, ChunkingDoesNotChangeTheResult) {
  auto model = tiny_gpt();
  trainer::GptAdapter adapter(model);
  const auto x = at::randn({8, 16});
  const auto whole = coupling::jacobians_at_output(adapter, 0, x, 7, {7, 2});
  for (auto method : {coupling::JacobianOptions::Method::kGeneric, coupling::JacobianOptions::Method::kTokenLocal}) {
    for (int64_t rows : {1, 3, 5}) {
      coupling::JacobianOptions options;
      options.method = method;
      options.max_bytes = rows * coupling::replica_bytes(8, 16);
      ASSERT_EQ(coupling::jacobian_chunk_rows(8, 16, options.max_bytes), rows);
      EXPECT_TRUE(at::allclose(coupling::jacobians_at_output(adapter, 0, x, 7, {7, 2}, options), whole, 1e-5, 1e-7));
    }
    coupling::JacobianOptions options;
    options.method = method;
    EXPECT_TRUE(at::allclose(coupling::jacobian_rows(adapter, 0, x, 7, {7, 2}, 3, 11, options), whole.narrow(1, 3, 8),
                             1e-5, 1e-7));
    EXPECT_THROW(coupling::jacobian_rows(adapter, 0, x, 7, {7}, 5, 5, options), coupling::ConfigError);
    EXPECT_THROW(coupling::jacobian_rows(adapter, 0, x, 7, {7}, 0, 17, options), coupling::ConfigError);
  }
}

TEST(Jacobian, GenericStrategiesAgreeWithRowByRowAutogradAndArePickedByShape) {
  auto model = tiny_gpt();
  trainer::GptAdapter adapter(model);
  const auto x = at::randn({8, 16});
  auto branch = [&](const at::Tensor& in) { return model->block(0)->residual_branch(in); };
  using Options = coupling::JacobianOptions;
  for (auto strategy : {Options::Generic::kRowByRow, Options::Generic::kReplicated}) {
    Options options;
    options.method = Options::Method::kGeneric;
    options.generic = strategy;
    const auto rows = coupling::jacobian_rows(adapter, 0, x, 6, {6, 0, 3}, 2, 13, options);
    for (int64_t r = 0; r < 3; ++r) {
      const auto reference = engine_support::brute_force_jacobian(branch, x, std::vector<int64_t>{6, 0, 3}[r], 6);
      EXPECT_TRUE(at::allclose(rows[r], reference.narrow(0, 2, 11), 1e-5, 1e-6)) << "input " << r;
    }
  }
  EXPECT_EQ(coupling::generic_strategy(8, 16, false), Options::Generic::kReplicated);
  EXPECT_EQ(coupling::generic_strategy(128, 768, false), Options::Generic::kRowByRow);
  EXPECT_EQ(coupling::generic_strategy(128, 768, true), Options::Generic::kReplicated);
}

TEST(Jacobian, NonCausalBlockGivesEveryPair) {
  at::manual_seed(3);
  trainer::TransformerBlock block(trainer::BlockConfig{16, 2, 0.0, /*causal=*/false});
  coupling::LambdaAdapter adapter(
      1, /*causal=*/false,
      [](const at::Tensor& x) {
        return std::vector<at::Tensor>{x, x};
      },
      [&](int64_t, const at::Tensor& x) { return block->residual_branch(x); });
  const auto x = at::randn({5, 16});
  const auto j = coupling::jacobians_at_output(adapter, 0, x, 1, {4, 1});
  auto branch = [&](const at::Tensor& in) { return block->residual_branch(in); };
  const auto later = engine_support::brute_force_jacobian(branch, x, 4, 1);
  EXPECT_GT(later.abs().max().item<double>(), 1e-4);  // a later token does influence an earlier one
  EXPECT_TRUE(at::allclose(j[0], later, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(j[1], engine_support::brute_force_jacobian(branch, x, 1, 1), 1e-5, 1e-6));
}

TEST(Jacobian, TokenLocalAgreesWithGenericCausalAndNonCausal) {
  for (bool causal : {true, false}) {
    at::manual_seed(causal ? 5 : 6);
    trainer::TransformerBlock block(trainer::BlockConfig{32, 4, 0.0, causal});
    {
      at::NoGradGuard no_grad;
      for (auto& p : block->parameters()) p.add_(at::randn_like(p) * 0.1);
    }
    trainer::BlockAdapter adapter(block);
    const auto x = at::randn({9, 32});
    coupling::JacobianOptions generic, local;
    generic.method = coupling::JacobianOptions::Method::kGeneric;
    local.method = coupling::JacobianOptions::Method::kTokenLocal;
    for (int64_t t2 : {8, 4}) {
      std::vector<int64_t> inputs = {t2, 0, t2 - 1};
      if (!causal) inputs.push_back(8 - (t2 == 8));  // a later token: only non-causal blocks see it
      const auto a = coupling::jacobians_at_output(adapter, 0, x, t2, inputs, generic);
      const auto b = coupling::jacobians_at_output(adapter, 0, x, t2, inputs, local);
      for (size_t r = 0; r < inputs.size(); ++r) {
        const auto i = static_cast<int64_t>(r);
        const double scale = a[i].abs().max().item<double>();
        EXPECT_GT(scale, 1e-4);
        EXPECT_LT((a[i] - b[i]).abs().max().item<double>(), 1e-5 * scale)
            << (causal ? "causal" : "non-causal") << " t1=" << inputs[r] << " t2=" << t2;
      }
    }
  }
}

TEST(Jacobian, TokenLocalNeedsTheCapability) {
  coupling::LambdaAdapter adapter(
      1, true,
      [](const at::Tensor& x) {
        return std::vector<at::Tensor>{x, x};
      },
      [](int64_t, const at::Tensor& x) { return x * 2; });
  coupling::JacobianOptions local;
  local.method = coupling::JacobianOptions::Method::kTokenLocal;
  EXPECT_THROW(coupling::jacobians_at_output(adapter, 0, at::randn({3, 4}), 2, {2}, local), coupling::ConfigError);
  // kAuto falls back to the generic path: J of 2x is 2I.
  EXPECT_TRUE(at::allclose(coupling::jacobians_at_output(adapter, 0, at::randn({3, 4}), 2, {2})[0], 2 * at::eye(4)));
}

TEST(Jacobian, LeavesParametersAndGradientsUntouched) {
  auto model = tiny_gpt();
  trainer::GptAdapter adapter(model);
  std::vector<at::Tensor> before, grads;
  for (auto& p : model->parameters()) {
    p.mutable_grad() = at::full_like(p, 0.5);
    before.push_back(p.detach().clone());
  }
  coupling::jacobians_at_output(adapter, 1, at::randn({8, 16}), 7, {7, 3});
  const auto after = model->parameters();
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_TRUE(at::equal(after[i], before[i]));
    EXPECT_TRUE(at::equal(after[i].grad(), at::full_like(after[i], 0.5)));
  }
}

}  // namespace
