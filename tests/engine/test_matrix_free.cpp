// The matrix-free path against the materialised one on a model with known Jacobians: products,
// top-K and its Hutchinson norm, coupling matrices, the depth band, the cost estimate and the
// choice of path, and the refusals. Every family of Hugging Face models, and the bundled GPT and
// ViT, are checked against the materialised path in tests/models and tests/trainer.
#include "coupling/engine/coupling_metric.h"
#include "coupling/engine/jacobian_products.h"
#include "coupling/engine/matrix_free.h"
#include "coupling/engine/measurement.h"
#include "coupling/error.h"
#include "engine_support.h"
#include "measurement_difference.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace {

using coupling::JacobianPath;
using coupling::MeasurementOptions;

std::vector<at::Tensor> random_blocks(int64_t count, int64_t d, uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  std::vector<at::Tensor> blocks;
  for (int64_t l = 0; l < count; ++l) blocks.push_back(at::randn({d, d}, g, at::TensorOptions()) / std::sqrt(d));
  return blocks;
}

TEST(MatrixFree, ProductsEqualTheJacobianTimesTheVectors) {
  const auto blocks = random_blocks(2, 16, 31);
  engine_support::TokenLocalLinearBlocks adapter(blocks);
  auto g = at::detail::createCPUGenerator(32);
  const auto x = at::randn({5, 16}, g, at::TensorOptions());
  const auto columns = at::randn({16, 7}, g, at::TensorOptions());
  for (int64_t l = 0; l < 2; ++l) {
    const auto op = coupling::jacobian_operator(adapter, l, x, 4, 4, /*max_bytes=*/1);  // a pass per vector
    // Each entry is one float32 dot product of 16 terms of size ~1: round-off well under 1e-5.
    EXPECT_TRUE(at::allclose(op.multiply(columns), at::matmul(blocks[l], columns), 1e-5, 1e-5));
    EXPECT_TRUE(at::allclose(op.multiply_transpose(columns), at::matmul(blocks[l].t(), columns), 1e-5, 1e-5));
    // J_{2,4} = 0 for a token-wise map: both products vanish.
    const auto zero = coupling::jacobian_operator(adapter, l, x, 2, 4);
    EXPECT_EQ(zero.multiply(columns).abs().max().item<double>(), 0.0);
    EXPECT_EQ(zero.multiply_transpose(columns).abs().max().item<double>(), 0.0);
  }
  EXPECT_THROW(coupling::jacobian_operator(adapter, 0, x, 4, 2), coupling::ConfigError);  // causal zero
  auto plain = engine_support::linear_blocks(blocks);
  EXPECT_THROW(coupling::jacobian_operator(*plain, 0, x, 4, 4), coupling::ConfigError);  // no token-local function
}

TEST(MatrixFree, TopKEqualsTheDenseRandomizedEstimateAndItsNormIsTheSampleNorm) {
  const auto a = random_blocks(1, 24, 33)[0];
  engine_support::TokenLocalLinearBlocks adapter({a});
  const auto x = at::zeros({1, 24});
  coupling::RandomizedOptions options;
  const auto omega = coupling::test_matrix({}, 24, 24, 4, options);
  const auto spectrum = coupling::matrix_free_topk(coupling::jacobian_operator(adapter, 0, x, 0, 0), 4, options, omega);
  const auto dense = coupling::randomized_topk(coupling::dense_operator(a), 4, options, omega);
  EXPECT_TRUE(at::allclose(spectrum.factors.s, dense.s, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(spectrum.factors.u.abs(), dense.u.abs(), 1e-4, 1e-5));
  // The Hutchinson estimate is ||A Omega||_F / sqrt(K + p), exactly.
  const double expected = at::matmul(a, omega).to(at::kDouble).norm().item<double>() / std::sqrt(24.0);
  EXPECT_NEAR(spectrum.frobenius, expected, 1e-5 * expected);
}

TEST(MatrixFree, NonFiniteProductsGiveNaNFactors) {
  auto a = random_blocks(1, 8, 34)[0];
  a[1][2] = std::numeric_limits<float>::quiet_NaN();
  engine_support::TokenLocalLinearBlocks adapter({a});
  coupling::RandomizedOptions options;
  const auto spectrum = coupling::matrix_free_topk(coupling::jacobian_operator(adapter, 0, at::zeros({1, 8}), 0, 0), 2,
                                                   options, coupling::test_matrix({}, 8, 8, 2, options));
  EXPECT_TRUE(at::isnan(spectrum.factors.s).all().item<bool>());
  EXPECT_TRUE(std::isnan(spectrum.frobenius));
}

TEST(MatrixFree, CouplingEqualsTheMaterialisedMatricesInsideThePairsAndNaNOutside) {
  const auto blocks = random_blocks(4, 12, 35);
  engine_support::TokenLocalLinearBlocks adapter(blocks);
  const auto x = at::zeros({1, 12});
  const auto stacked = at::stack(blocks);
  const auto factors = coupling::exact_topk(stacked, 5);
  const std::vector<int64_t> k_grid{2, 5};
  const auto pairs = coupling::band_pairs({0, 1, 2, 3}, 1);
  const auto free = coupling::matrix_free_coupling(
      [&](int64_t l) { return coupling::jacobian_operator(adapter, l, x, 0, 0); }, factors, k_grid, pairs);
  const auto dense = coupling::coupling_matrices(stacked, factors, k_grid);  // [2, 2, nK, 4, 4]
  ASSERT_EQ(free.sizes(), dense.sizes());
  const auto inside = pairs.expand_as(dense);
  EXPECT_TRUE(at::allclose(free.masked_select(inside), dense.masked_select(inside), 1e-5, 1e-6));
  EXPECT_TRUE(at::isnan(free.masked_select(inside.logical_not())).all().item<bool>());
}

TEST(MatrixFree, BandPairsAreTheBlocksAtMostWApart) {
  const auto pairs = coupling::band_pairs({0, 0, 1, 2}, 1);
  const auto expected =
      at::tensor({1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 1, 1}, at::kLong).view({4, 4}).to(at::kBool);
  EXPECT_TRUE(pairs.equal(expected));
  EXPECT_TRUE(coupling::band_pairs({0, 5}, 0).all().item<bool>());
}

TEST(MatrixFree, WholeMeasurementEqualsTheMaterialisedOneWithAndWithoutABand) {
  const auto blocks = random_blocks(4, 32, 36);
  engine_support::TokenLocalLinearBlocks adapter(blocks);
  auto g = at::detail::createCPUGenerator(37);
  const auto probes = at::randn({2, 6, 32}, g, at::TensorOptions());
  for (int64_t band : {0, 1}) {
    MeasurementOptions options;
    options.k_grid = {3, 6};
    options.spectrum = coupling::SpectrumMethod::kRandomized;
    options.tokens.mode = coupling::TokenSelection::Mode::kList;
    options.tokens.tokens = {2, -1};
    options.tokens.context_pairs = {{1, -1}, {-1, -1}};
    options.depth_band = band;
    options.jacobian_path = JacobianPath::kMaterialised;
    const auto materialised = coupling::measure(adapter, probes, options);
    options.jacobian_path = JacobianPath::kMatrixFree;
    const auto free = coupling::measure(adapter, probes, options);
    EXPECT_FALSE(materialised.matrix_free);
    EXPECT_TRUE(free.matrix_free);
    // Products in another order of float32 sums: the values agree far inside the 1e-3 goal.
    const auto [difference, where] = test_support::largest_difference(materialised, free);
    EXPECT_LE(difference, 1e-4) << where << ", band " << band;
    EXPECT_EQ(free.context_coupling.sizes(), materialised.context_coupling.sizes());
    const auto depth = materialised.depth_coupling;  // [P, n, 2, 2, nK, L, L]
    if (band == 1) {
      EXPECT_TRUE(std::isnan(depth[0][0][0][0][0][0][2].item<double>()));
      EXPECT_TRUE(std::isfinite(depth[0][0][0][0][0][0][1].item<double>()));
      // The mean averages the band's off-diagonal entries: the adjacent ones here.
      EXPECT_TRUE(at::allclose(materialised.depth_mean_offdiag, materialised.depth_mean_adjacent));
    } else {
      EXPECT_TRUE(at::isfinite(depth).all().item<bool>());
    }
  }
}

TEST(MatrixFree, CostEstimateCountsProductsAndAutoChoosesByIt) {
  MeasurementOptions options;  // K 10, 30, 50, p = 20, q = 4
  // Llama-3-8B's shape, the last token: K = 50 over the full depth costs more than materialising;
  // K = 10 with adjacent coupling only, far less.
  auto full = coupling::resolve_layout(1, 128, 32, 4096, true, options);
  // Per Jacobian: 3 (q + 1)(K + p) = 1050 VJPs at 2.5 rows for the spectrum, 2 K x 32 partners =
  // 3200 for coupling.
  EXPECT_NEAR(coupling::matrix_free_cost(full, options), (2.5 * 1050.0 + 3200.0) / 4096.0, 1e-12);
  EXPECT_FALSE(full.matrix_free);
  options.k_grid = {10};
  options.depth_band = 1;
  auto banded = coupling::resolve_layout(1, 128, 32, 4096, true, options);
  // 2.5 x 450 + 2 x 10 x (2 + 3 x 30 partners over the 32 blocks) / 32.
  EXPECT_NEAR(coupling::matrix_free_cost(banded, options), (2.5 * 450.0 + 20.0 * 94.0 / 32.0) / 4096.0, 1e-12);
  EXPECT_TRUE(banded.matrix_free);
  EXPECT_FALSE(coupling::resolve_layout(1, 128, 32, 4096, true, options, /*token_local=*/false).matrix_free);
  options.spectrum = coupling::SpectrumMethod::kExact;
  EXPECT_FALSE(coupling::resolve_layout(1, 128, 32, 4096, true, options).matrix_free);
}

TEST(MatrixFree, WhatItCannotDoIsRefusedByName) {
  MeasurementOptions options;
  options.jacobian_path = JacobianPath::kMatrixFree;
  options.spectrum = coupling::SpectrumMethod::kExact;
  try {
    coupling::resolve_layout(1, 8, 2, 64, true, options);
    FAIL() << "an exact spectrum without J";
  } catch (const coupling::ConfigError& e) {
    EXPECT_EQ(e.setting(), "MeasurementOptions::jacobian_path");
    EXPECT_NE(std::string(e.what()).find("exact"), std::string::npos) << e.what();
  }
  options.spectrum = coupling::SpectrumMethod::kAuto;
  options.keep_jacobians = true;
  EXPECT_THROW(coupling::resolve_layout(1, 8, 2, 64, true, options), coupling::ConfigError);
  options.keep_jacobians = false;
  EXPECT_THROW(coupling::resolve_layout(1, 8, 2, 64, true, options, /*token_local=*/false), coupling::ConfigError);
  EXPECT_TRUE(coupling::resolve_layout(1, 8, 2, 64, true, options).matrix_free);
}

TEST(MatrixFree, OptionsTextNamesAForcedPathAndABandOnly) {
  const auto plain = MeasurementOptions::parse("", "last", "", "auto");
  EXPECT_EQ(plain.str().find("jacobian"), std::string::npos);
  EXPECT_EQ(plain.str().find("band"), std::string::npos);
  const auto forced = MeasurementOptions::parse("", "last", "", "auto", {}, "matrix-free", 2);
  EXPECT_EQ(forced.jacobian_path, JacobianPath::kMatrixFree);
  EXPECT_NE(forced.str().find(" jacobian=matrix-free depth_band=2"), std::string::npos) << forced.str();
  EXPECT_THROW(MeasurementOptions::parse("", "last", "", "auto", {}, "lazy"), coupling::ConfigError);
  EXPECT_THROW(MeasurementOptions::parse("", "last", "", "auto", {}, "auto", -1), coupling::ConfigError);
}

}  // namespace
