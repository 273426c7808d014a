// Whole measurements: analytic linear blocks (known Jacobians), a tiny GPT against an
// independent brute-force pipeline (row-by-row autograd, full SVD, pair-by-pair metric),
// token/context selections, randomized vs exact, no side effects, and bad options.
#include "coupling/error.h"
#include "coupling/measurement.h"
#include "coupling/trajectory.h"
#include "engine_support.h"
#include "test_support.h"
#include "trainer/gpt.h"
#include "trainer/transformer_adapter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace {

using coupling::MeasurementOptions;
using coupling::Normalisation;
using coupling::Orientation;

TEST(Measurement, IdenticalLinearBlocksArePerfectlyCoupled) {
  auto g = at::detail::createCPUGenerator(21);
  const auto a = at::randn({12, 12}, g, at::TensorOptions()) * 0.2;
  auto adapter = engine_support::linear_blocks({a, a, a});
  MeasurementOptions options;
  options.k_grid = {3, 12};
  const auto m = coupling::measure(*adapter, at::randn({2, 5, 12}, g, at::TensorOptions()), options);
  ASSERT_EQ(m.depth_coupling.sizes(), (at::IntArrayRef{2, 1, 2, 2, 2, 3, 3}));
  EXPECT_LT(m.depth_coupling.select(2, 0).abs().max().item<double>(), 1e-5);  // ujv: 0 everywhere
  EXPECT_TRUE(at::allclose(m.singular_values[0][0][1], coupling::exact_topk(a, 12).s, 1e-5, 1e-6));
}

TEST(Measurement, DistinctLinearBlocksMatchThePairReference) {
  auto g = at::detail::createCPUGenerator(22);
  std::vector<at::Tensor> matrices;
  for (int l = 0; l < 3; ++l) matrices.push_back(at::randn({10, 10}, g, at::TensorOptions()) * 0.3);
  auto adapter = engine_support::linear_blocks(matrices);
  MeasurementOptions options;
  options.k_grid = {4};
  const auto m = coupling::measure(*adapter, at::randn({1, 4, 10}, g, at::TensorOptions()), options);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      const double expected = coupling::coupling_pair(matrices[i], coupling::exact_topk(matrices[i], 4).s,
                                                      coupling::exact_topk(matrices[j], 4), 4, Orientation::kVJU,
                                                      Normalisation::kTrace);
      EXPECT_NEAR(m.depth_coupling[0][0][1][1][0][i][j].item<double>(), expected, 1e-5);
    }
  }
}

trainer::Gpt tiny_gpt() { return test_support::perturbed_gpt(31, test_support::gpt_config(6, 16, 3, 2), 0.1); }

TEST(Measurement, GptMatchesBruteForcePipeline) {
  auto model = tiny_gpt();
  trainer::GptAdapter adapter(model);
  const auto probes = at::randint(256, {2, 6}, at::kLong);
  MeasurementOptions options;
  options.k_grid = {5, 16};
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {-1, 2};
  options.tokens.context_pairs = {{1, 5}, {5, 5}, {1, 3}};
  const auto m = coupling::measure(adapter, probes, options);
  EXPECT_EQ(m.tokens, (std::vector<int64_t>{5, 2}));
  ASSERT_EQ(m.token_coupling.sizes(), (at::IntArrayRef{2, 3, 2, 2, 2, 2, 2}));
  ASSERT_EQ(m.block_token_coupling.sizes(), (at::IntArrayRef{2, 2, 2, 2, 6, 6}));
  ASSERT_EQ(m.context_coupling.sizes(), (at::IntArrayRef{2, 2, 2, 2, 9, 9}));

  // Independent path: eval-mode residual states, row-by-row Jacobians, full SVD, pair metric.
  model->eval();
  at::NoGradGuard no_grad;
  const auto states = model->residual_states(probes);
  for (int64_t p = 0; p < 2; ++p) {
    std::vector<at::Tensor> j_last, j_context_15;
    for (int64_t l = 0; l < 3; ++l) {
      auto branch = [&](const at::Tensor& in) { return model->block(l)->residual_branch(in); };
      j_last.push_back(engine_support::brute_force_jacobian(branch, states[l][p], 5, 5));
      j_context_15.push_back(engine_support::brute_force_jacobian(branch, states[l][p], 1, 5));
    }
    for (int64_t i = 0; i < 3; ++i) {
      const auto si = coupling::exact_topk(j_last[i], 16, coupling::SvdPrecision::kFloat64).s;
      EXPECT_TRUE(at::allclose(m.singular_values[p][0][i], si, 1e-4, 1e-6));
      for (int64_t j = 0; j < 3; ++j) {
        const auto fj = coupling::exact_topk(j_last[j], 16, coupling::SvdPrecision::kFloat64);
        const double ujv = coupling::coupling_pair(j_last[i], si, fj, 5, Orientation::kUJV, Normalisation::kNorm);
        EXPECT_NEAR(m.depth_coupling[p][0][0][0][0][i][j].item<double>(), ujv, 2e-4 * (1 + ujv)) << i << "," << j;
      }
    }
    // Context entry: (block 0, pair (1,5)) diagonalised in the basis of (block 2, pair (1,5)).
    const auto s0 = coupling::exact_topk(j_context_15[0], 16).s;
    const double expected = coupling::coupling_pair(j_context_15[0], s0, coupling::exact_topk(j_context_15[2], 16), 16,
                                                    Orientation::kUJV, Normalisation::kTrace);
    EXPECT_NEAR(m.context_coupling[p][0][1][1][0][2 * 3].item<double>(), expected, 2e-4 * (1 + expected));
    // Trajectory of the last token.
    const auto path = at::stack({states[0][p][5], states[1][p][5], states[2][p][5], states[3][p][5]});
    EXPECT_NEAR(m.line_shape_score[p][0].item<double>(), coupling::trajectory_metrics(path).line_shape_score, 1e-6);
  }
  EXPECT_GE(m.line_shape_score.min().item<double>(), 1.0);
  EXPECT_TRUE(at::isfinite(m.context_same_input).all().item<bool>());
  EXPECT_TRUE(at::isfinite(m.context_same_output).all().item<bool>());
}

TEST(Measurement, AllTokensAndRandomizedSpectra) {
  auto model = tiny_gpt();
  trainer::GptAdapter adapter(model);
  const auto probes = at::randint(256, {1, 6}, at::kLong);
  MeasurementOptions exact;
  exact.k_grid = {4};
  exact.spectrum = coupling::SpectrumMethod::kExact;
  exact.tokens.mode = coupling::TokenSelection::Mode::kAll;
  const auto a = coupling::measure(adapter, probes, exact);
  EXPECT_EQ(a.tokens.size(), 6u);
  auto randomized = exact;
  randomized.spectrum = coupling::SpectrumMethod::kRandomized;
  randomized.randomized.power_iterations = 4;
  const auto b = coupling::measure(adapter, probes, randomized);
  EXPECT_LT((a.singular_values - b.singular_values).abs().max().item<double>(),
            1e-3 * a.singular_values.max().item<double>());
  EXPECT_LT((a.depth_mean_offdiag - b.depth_mean_offdiag).abs().max().item<double>(), 1e-2);
}

TEST(Measurement, AutoSpectrumIsRandomizedOnlyWhenKIsWellBelowD) {
  auto model = tiny_gpt();  // d = 16
  trainer::GptAdapter adapter(model);
  const auto probes = at::randint(256, {1, 6}, at::kLong);
  auto measure_with = [&](coupling::SpectrumMethod method, int64_t k) {
    MeasurementOptions options;
    options.k_grid = {k};
    options.spectrum = method;
    return coupling::measure(adapter, probes, options).singular_values;
  };
  // K = 4 (4K <= d): auto is the randomized estimator, bit for bit; K = 5: exact.
  EXPECT_TRUE(at::equal(measure_with(coupling::SpectrumMethod::kAuto, 4),
                        measure_with(coupling::SpectrumMethod::kRandomized, 4)));
  EXPECT_TRUE(at::equal(measure_with(coupling::SpectrumMethod::kAuto, 5),
                        measure_with(coupling::SpectrumMethod::kExact, 5)));
}

TEST(Measurement, LeavesModelUntouched) {
  auto model = tiny_gpt();
  model->train();
  std::vector<at::Tensor> before;
  for (auto& p : model->parameters()) {
    p.mutable_grad() = at::full_like(p, -1.0);
    before.push_back(p.detach().clone());
  }
  trainer::GptAdapter adapter(model);
  coupling::measure(adapter, at::randint(256, {1, 6}, at::kLong));
  EXPECT_TRUE(model->is_training());  // mode restored
  const auto after = model->parameters();
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_TRUE(at::equal(after[i], before[i]));
    EXPECT_TRUE(at::equal(after[i].grad(), at::full_like(after[i], -1.0)));
  }
}

TEST(Measurement, NonFiniteJacobianGivesNaNOnlyWhereItBelongs) {
  auto g = at::detail::createCPUGenerator(23);
  auto broken = at::randn({6, 6}, g, at::TensorOptions());
  broken[2][3] = std::numeric_limits<float>::quiet_NaN();
  auto adapter = engine_support::linear_blocks(
      {at::randn({6, 6}, g, at::TensorOptions()), broken, at::randn({6, 6}, g, at::TensorOptions())});
  MeasurementOptions options;
  options.k_grid = {3};
  const auto m = coupling::measure(*adapter, at::randn({1, 3, 6}, g, at::TensorOptions()), options);
  const auto depth = m.depth_coupling[0][0][0][0][0];  // ujv, norm, K = 3: [L, L]
  EXPECT_TRUE(at::isnan(m.singular_values[0][0][1]).all().item<bool>());
  EXPECT_TRUE(at::isfinite(m.singular_values[0][0][0]).all().item<bool>());
  EXPECT_TRUE(std::isnan(depth[1][0].item<double>()));
  EXPECT_TRUE(std::isnan(depth[0][1].item<double>()));
  EXPECT_TRUE(std::isfinite(depth[0][2].item<double>()));
  EXPECT_TRUE(std::isfinite(depth[2][0].item<double>()));
}

TEST(Measurement, BadOptionsAreRejected) {
  auto model = tiny_gpt();
  trainer::GptAdapter adapter(model);
  const auto probes = at::randint(256, {1, 6}, at::kLong);
  MeasurementOptions options;
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {6};
  EXPECT_THROW(coupling::measure(adapter, probes, options), coupling::ConfigError);
  options.tokens.tokens = {1};
  options.tokens.context_pairs = {{4, 2}};  // causal zero
  EXPECT_THROW(coupling::measure(adapter, probes, options), coupling::ConfigError);
  options.tokens.context_pairs.clear();
  options.k_grid = {0};
  EXPECT_THROW(coupling::measure(adapter, probes, options), coupling::ConfigError);
}

}  // namespace
