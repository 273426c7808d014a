// Whole measurements of the bundled GPT (the token-local Jacobian path): against an independent
// brute-force pipeline (row-by-row autograd, full SVD, pair-by-pair metric), randomized vs
// exact spectra, no side effects on the model.
#include "coupling/engine/measurement.h"
#include "coupling/engine/trajectory.h"
#include "engine_support.h"
#include "measurement_difference.h"
#include "trainer/models/gpt.h"
#include "trainer/models/transformer_adapter.h"
#include "trainer_support.h"

#include <gtest/gtest.h>

namespace {

using coupling::MeasurementOptions;
using coupling::Normalisation;
using coupling::Orientation;

trainer::Gpt tiny_gpt() { return test_support::perturbed_gpt(31, test_support::gpt_config(6, 16, 3, 2), 0.1); }

TEST(GptMeasurement, MatrixFreeEqualsMaterialised) {
  auto model = tiny_gpt();
  trainer::GptAdapter adapter(model);
  const auto probes = at::randint(256, {2, 6}, at::kLong);
  MeasurementOptions options;
  options.k_grid = {3, 8};
  options.spectrum = coupling::SpectrumMethod::kRandomized;
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {-1, 2};
  options.tokens.context_pairs = {{1, -1}};
  options.depth_band = 1;
  const auto [difference, where] = test_support::path_difference(adapter, probes, options);
  EXPECT_LE(difference, 1e-3) << where;
}

TEST(GptMeasurement, GptMatchesBruteForcePipeline) {
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

TEST(GptMeasurement, AllTokensAndRandomizedSpectra) {
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

TEST(GptMeasurement, AutoSpectrumIsRandomizedOnlyWhenKIsWellBelowD) {
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
  EXPECT_TRUE(
      at::equal(measure_with(coupling::SpectrumMethod::kAuto, 5), measure_with(coupling::SpectrumMethod::kExact, 5)));
}

TEST(GptMeasurement, LeavesModelUntouched) {
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

}  // namespace
