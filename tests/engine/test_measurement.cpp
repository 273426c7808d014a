// Whole measurements, engine only: analytic linear blocks (known Jacobians), the examples'
// mixer model against row-by-row autograd Jacobians and full SVDs (token coupling), the
// layout and its size cap, and bad options. The bundled GPT's tests are in tests/trainer.
#include "coupling/engine/coupling_null.h"
#include "coupling/engine/fields.h"
#include "coupling/engine/layer_linearity.h"
#include "coupling/engine/measurement.h"
#include "coupling/engine/trajectory.h"
#include "coupling/error.h"
#include "engine_support.h"
#include "mixer_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

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
  // J^l = a at every token: ||J^l||_F = ||a||_F, summed in float64 from float32 entries.
  const double frobenius = a.to(at::kDouble).pow(2).sum().sqrt().item<double>();
  ASSERT_EQ(m.jacobian_frobenius.sizes(), (at::IntArrayRef{2, 1, 3}));
  EXPECT_TRUE(at::allclose(m.jacobian_frobenius, at::full({2, 1, 3}, frobenius, at::kDouble), 1e-6, 0.0));
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
      const double expected =
          coupling::coupling_pair(matrices[i], coupling::exact_topk(matrices[i], 4).s,
                                  coupling::exact_topk(matrices[j], 4), 4, Orientation::kVJU, Normalisation::kTrace);
      EXPECT_NEAR(m.depth_coupling[0][0][1][1][0][i][j].item<double>(), expected, 1e-5);
    }
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
  auto adapter = mixer_adapter(MixerModel(64, 8, 2));
  const auto probes = at::randint(64, {1, 6}, at::kLong);
  MeasurementOptions options;
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {6};
  EXPECT_THROW(coupling::measure(*adapter, probes, options), coupling::ConfigError);
  options.tokens.tokens = {1};
  options.tokens.context_pairs = {{4, 2}};  // causal zero
  EXPECT_THROW(coupling::measure(*adapter, probes, options), coupling::ConfigError);
  options.tokens.context_pairs.clear();
  options.k_grid = {0};
  EXPECT_THROW(coupling::measure(*adapter, probes, options), coupling::ConfigError);
}

TEST(Measurement, TokenCouplingMatchesRowByRowJacobiansAndFullSvds) {
  at::manual_seed(41);
  MixerModel model(64, 12, 3);
  auto adapter = mixer_adapter(model);
  const auto probes = at::randint(64, {2, 7}, at::kLong);
  MeasurementOptions options;
  options.k_grid = {3, 12};
  options.spectrum = coupling::SpectrumMethod::kExact;
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {2, -1, 4};
  const auto m = coupling::measure(*adapter, probes, options);
  ASSERT_EQ(m.tokens, (std::vector<int64_t>{2, 6, 4}));
  ASSERT_EQ(m.token_coupling.sizes(), (at::IntArrayRef{2, 3, 2, 2, 2, 3, 3}));
  ASSERT_EQ(m.block_token_coupling.sizes(), (at::IntArrayRef{2, 2, 2, 2, 9, 9}));

  at::NoGradGuard no_grad;
  const auto states = adapter->residual_states(probes);
  for (int64_t p = 0; p < 2; ++p) {
    for (int64_t l = 0; l < 3; ++l) {
      auto branch = [&](const at::Tensor& in) { return model->block(l)->branch(in); };
      std::vector<at::Tensor> jacobians;
      for (int64_t t : m.tokens) jacobians.push_back(engine_support::brute_force_jacobian(branch, states[l][p], t, t));
      for (size_t i = 0; i < 3; ++i) {
        const auto si = coupling::exact_topk(jacobians[i], 12, coupling::SvdPrecision::kFloat64).s;
        for (size_t j = 0; j < 3; ++j) {
          const auto fj = coupling::exact_topk(jacobians[j], 12, coupling::SvdPrecision::kFloat64);
          for (int64_t o = 0; o < 2; ++o) {
            for (int64_t k = 0; k < 2; ++k) {
              const double expected = coupling::coupling_pair(jacobians[i], si, fj, m.k_grid[k],
                                                              static_cast<Orientation>(o), Normalisation::kTrace);
              // float32 Jacobians and SVD against float64: m is O(1), its error ~1e-6 x the
              // conditioning of the top-K subspace; 1e-4 leaves two orders of margin.
              EXPECT_NEAR(m.token_coupling[p][l][o][1][k][i][j].item<double>(), expected, 1e-4 * (1 + expected));
              // The same pair in the blocks-by-tokens matrix, index l * n + token.
              EXPECT_NEAR(m.block_token_coupling[p][o][1][k][l * 3 + i][l * 3 + j].item<double>(),
                          m.token_coupling[p][l][o][1][k][i][j].item<double>(), 1e-9);
            }
          }
        }
      }
    }
  }
  // Mean over token != basis_token, per probe and block.
  const auto tc = m.token_coupling;
  const auto off = (tc.sum({-1, -2}) - tc.diagonal(0, -2, -1).sum(-1)) / 6.0;
  EXPECT_TRUE(at::allclose(m.token_mean_offdiag, off, 1e-9, 1e-12));
}

// The nulls of a measurement are those of its Jacobians' spectra (coupling_null.h), pooled over
// the pairs each summary averages; layer linearity runs over every token of every probe.
TEST(Measurement, NullsPoolTheJacobiansNullsAndLinearityUsesEveryToken) {
  at::manual_seed(44);
  MixerModel model(64, 12, 3);
  auto adapter = mixer_adapter(model);
  const auto probes = at::randint(64, {2, 7}, at::kLong);  // N = 14 tokens >= d + 1 = 13
  MeasurementOptions options;
  options.k_grid = {3, 12};
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {2, -1, 4};
  const auto m = coupling::measure(*adapter, probes, options);
  const int64_t L = 3, n = 3;
  // Per Jacobian: [P, n, L, normalisation, k], the same for both orientations.
  const auto own = coupling::coupling_null(m.singular_values, m.jacobian_frobenius, 12, m.k_grid);
  for (int64_t o = 0; o < 2; ++o) {
    EXPECT_TRUE(at::equal(m.depth_coupling_null.select(2, o), own.mean.permute({0, 1, 3, 4, 2})));
    EXPECT_TRUE(at::equal(m.depth_coupling_null_sd.select(2, o), own.sd.permute({0, 1, 3, 4, 2})));
  }
  // Every block has L - 1 depth partners and every token n - 1: the pooled means are plain means,
  // and the pooled sd is sqrt(sum of (partners) sd^2) / pairs.
  const auto& mean = m.depth_coupling_null;  // [P, n, 2, 2, nK, L]
  const auto& sd = m.depth_coupling_null_sd;
  EXPECT_TRUE(at::allclose(m.depth_mean_offdiag_null, mean.mean(-1), 1e-12, 1e-14));
  EXPECT_TRUE(
      at::allclose(m.depth_mean_offdiag_null_sd, (sd.pow(2).sum(-1) * (L - 1)).sqrt() / (L * (L - 1)), 1e-12, 1e-14));
  EXPECT_TRUE(at::allclose(m.token_mean_offdiag_null, mean.mean(1).movedim(-1, 1), 1e-12, 1e-14));
  EXPECT_TRUE(at::allclose(m.block_token_mean_offdiag_null, mean.mean({1, -1}), 1e-12, 1e-14));
  // Adjacent pairs: the end blocks have one partner, the middle one two.
  const auto weights = at::tensor({1.0, 2.0, 1.0}, at::kDouble);
  EXPECT_TRUE(at::allclose(m.depth_mean_adjacent_null, (mean * weights).sum(-1) / 4, 1e-12, 1e-14));
  EXPECT_EQ(n, static_cast<int64_t>(m.tokens.size()));

  at::NoGradGuard no_grad;
  const auto states = at::stack(adapter->residual_states(probes), 2);  // [P, T, L + 1, d]
  EXPECT_TRUE(at::allclose(m.layer_linearity, coupling::layer_linearity(states), 1e-9, 1e-12));
  EXPECT_TRUE(at::isfinite(m.layer_linearity).all().item<bool>());
  // One probe (7 tokens < 13): NaN.
  EXPECT_TRUE(
      at::isnan(coupling::measure(*adapter, probes.narrow(0, 0, 1), options).layer_linearity).all().item<bool>());
}

// Past jacobian_memory_bytes, a probe's Jacobians go to an unlinked temporary file and come back a
// few at a time: the same arithmetic on the same numbers, so every field is bit for bit the same.
TEST(Measurement, SpilledJacobiansGiveTheSameMeasurementBitForBit) {
  at::manual_seed(43);
  MixerModel model(32, 24, 3);
  auto adapter = mixer_adapter(model);
  const auto probes = at::randint(32, {2, 6}, at::kLong);
  MeasurementOptions options;
  options.k_grid = {2, 5};  // 4 K <= d = 24: the randomized estimator, whose test matrix is sliced
  options.tokens.mode = coupling::TokenSelection::Mode::kAll;
  options.tokens.context_pairs = {{0, 5}, {2, 5}, {1, 3}};
  const auto in_memory = coupling::measure(*adapter, probes, options);
  options.jacobian_memory_bytes = 0;
  const auto spilled = coupling::measure(*adapter, probes, options);
  int compared = 0;
  for (const auto& field : coupling::measurement_fields()) {
    const at::Tensor& a = in_memory.*field.member;
    const at::Tensor& b = spilled.*field.member;
    ASSERT_EQ(a.defined(), b.defined()) << field.name;
    if (!a.defined()) continue;
    // Bit for bit, NaN included (layer_linearity is NaN here: 12 tokens < d + 1).
    EXPECT_TRUE(at::allclose(a, b, 0.0, 0.0, /*equal_nan=*/true)) << field.name << " differs once spilled";
    ++compared;
  }
  EXPECT_GE(compared, 20);

  const char* old_tmpdir = std::getenv("TMPDIR");
  const std::string saved = old_tmpdir != nullptr ? old_tmpdir : "";
  setenv("TMPDIR", "/nonexistent-directory-of-libcoupling-tests", 1);
  try {
    coupling::measure(*adapter, probes, options);
    ADD_FAILURE() << "a spill into a missing directory went through";
  } catch (const coupling::Error& e) {
    EXPECT_NE(std::string(e.what()).find("set TMPDIR to a writable directory"), std::string::npos) << e.what();
  }
  if (old_tmpdir != nullptr) {
    setenv("TMPDIR", saved.c_str(), 1);
  } else {
    unsetenv("TMPDIR");
  }
}

TEST(Measurement, LayoutIsCheckedUpFrontAndTheSizeCapNamesItsFlag) {
  MeasurementOptions options;
  options.tokens.mode = coupling::TokenSelection::Mode::kAll;
  options.k_grid = {4, 8};
  const auto layout = coupling::resolve_layout(8, 128, 4, 64, true, options);
  EXPECT_EQ(layout.tokens.size(), 128u);
  EXPECT_FALSE(layout.has_block_token_coupling);  // L n = 512 > max_set_size = 256
  options.max_row_bytes = 1 << 20;
  try {
    coupling::resolve_layout(8, 128, 4, 64, true, options);
    FAIL() << "a 1 MiB cap must refuse token coupling of 128 tokens";
  } catch (const coupling::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("raise the cap (max_row_bytes)"), std::string::npos) << e.what();
    EXPECT_EQ(e.setting(), "MeasurementOptions::max_row_bytes");
  }
  options.tokens.mode = coupling::TokenSelection::Mode::kLast;
  EXPECT_NO_THROW(coupling::resolve_layout(8, 128, 4, 64, true, options));
}

}  // namespace
