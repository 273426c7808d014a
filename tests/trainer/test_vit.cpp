// The bundled ViT and its data: shapes, patch order, non-causal mixing, measurement through the
// adapter (token-local Jacobians equal to the generic ones), and the IDX reader on small
// synthetic files, good and bad.
#include "coupling/engine/measurement.h"
#include "coupling/error.h"
#include "measurement_difference.h"
#include "trainer/data/image_dataset.h"
#include "trainer/models/transformer_adapter.h"
#include "trainer/models/vit.h"
#include "trainer_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <vector>

namespace {

trainer::VitConfig tiny_vit() {
  trainer::VitConfig c;
  c.image_size = 8;
  c.patch = 4;
  c.d_model = 16;
  c.layers = 2;
  c.heads = 2;
  c.classes = 3;
  return c;
}

std::vector<uint8_t> bytes(size_t n, uint8_t first = 0) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(first + i);
  return v;
}

void write_mnist_dir(const test_support::TempDir& dir, int32_t train, int32_t test, int32_t test_labels) {
  test_support::write_idx(dir.file("train-images-idx3-ubyte"), {train, 8, 8}, bytes(static_cast<size_t>(train) * 64));
  test_support::write_idx(dir.file("train-labels-idx1-ubyte"), {train},
                          std::vector<uint8_t>(static_cast<size_t>(train), 2));
  test_support::write_idx(dir.file("t10k-images-idx3-ubyte"), {test, 8, 8}, bytes(static_cast<size_t>(test) * 64, 7));
  test_support::write_idx(dir.file("t10k-labels-idx1-ubyte"), {test_labels},
                          std::vector<uint8_t>(static_cast<size_t>(test_labels), 1));
}

}  // namespace

TEST(Vit, ShapesAndPatchOrder) {
  at::manual_seed(0);
  trainer::Vit model(tiny_vit());
  const auto images = at::randn({5, 1, 8, 8});
  EXPECT_EQ(model->forward(images).sizes(), (std::vector<int64_t>{5, 3}));
  const auto states = model->residual_states(images);
  ASSERT_EQ(states.size(), 3u);
  for (const auto& x : states) EXPECT_EQ(x.sizes(), (std::vector<int64_t>{5, 5, 16}));  // CLS + 2x2 patches
  EXPECT_EQ(tiny_vit().center_token(), 4);                                              // patch (1, 1) of the 2x2 grid
  // Patch 1 (row 0, column 1) of an image numbered 0..63 row-major holds columns 4..7 of rows 0..3.
  const auto patches = trainer::patchify(at::arange(64, at::kFloat).reshape({1, 1, 8, 8}), 4);
  EXPECT_EQ(patches.sizes(), (std::vector<int64_t>{1, 4, 16}));
  EXPECT_TRUE(at::equal(patches[0][1].narrow(0, 0, 4), at::arange(4, 8, at::kFloat)));
  EXPECT_TRUE(at::equal(patches[0][2].narrow(0, 0, 4), at::arange(32, 36, at::kFloat)));
  EXPECT_THROW(model->forward(at::randn({2, 1, 9, 9})), coupling::ConfigError);
}

TEST(Vit, AttentionIsNotCausal) {
  at::manual_seed(1);
  trainer::Vit model(tiny_vit());
  model->eval();
  auto images = at::randn({1, 1, 8, 8});
  auto changed = images.clone();
  changed.narrow(2, 4, 4).narrow(3, 4, 4).add_(1.0);  // the last patch only
  const auto a = model->residual_states(images), b = model->residual_states(changed);
  const auto diff0 = (a[0] - b[0]).abs().amax(-1)[0];  // X^0: only the last patch's token moves
  EXPECT_EQ(diff0.gt(0).sum().item<int64_t>(), 1);
  const auto diff1 = (a[1] - b[1]).abs().amax(-1)[0];  // after one block: every token, CLS included
  EXPECT_TRUE(diff1.gt(1e-6).all().item<bool>()) << diff1;
}

TEST(Vit, MeasurementTokenLocalEqualsGeneric) {
  at::manual_seed(2);
  trainer::Vit model(tiny_vit());
  trainer::VitAdapter adapter(model);
  EXPECT_FALSE(adapter.causal());
  coupling::MeasurementOptions options;
  options.k_grid = {4};
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {0, 4};
  options.tokens.context_pairs = {{4, 0}, {1, 3}};  // t1 > t2 is allowed: the model is not causal
  options.keep_jacobians = true;
  options.jacobian.method = coupling::JacobianOptions::Method::kTokenLocal;
  const auto images = at::randn({2, 1, 8, 8});
  const auto fast = coupling::measure(adapter, images, options);
  options.jacobian.method = coupling::JacobianOptions::Method::kGeneric;
  const auto slow = coupling::measure(adapter, images, options);
  EXPECT_TRUE(at::allclose(fast.jacobians, slow.jacobians, 1e-4, 1e-5));
  EXPECT_TRUE(at::allclose(fast.context_coupling, slow.context_coupling, 1e-4, 1e-5));
  EXPECT_GT(fast.context_coupling.abs().sum().item<double>(), 0.0);
}

TEST(Vit, MeasurementMatrixFreeEqualsMaterialised) {
  at::manual_seed(3);
  trainer::Vit model(tiny_vit());
  trainer::VitAdapter adapter(model);
  coupling::MeasurementOptions options;
  options.k_grid = {2, 6};
  options.spectrum = coupling::SpectrumMethod::kRandomized;
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {0, 4};
  options.tokens.context_pairs = {{4, 0}};
  const auto [difference, where] = test_support::path_difference(adapter, at::randn({2, 1, 8, 8}), options);
  EXPECT_LE(difference, 1e-3) << where;
}

TEST(Vit, ConfigErrors) {
  auto c = tiny_vit();
  c.patch = 3;
  EXPECT_THROW(c.validate(), coupling::ConfigError);
  c = tiny_vit();
  c.heads = 3;
  EXPECT_THROW(c.validate(), coupling::ConfigError);
}

TEST(ImageData, ReadsIdxFiles) {
  test_support::TempDir dir;
  write_mnist_dir(dir, 6, 4, 4);
  const auto images = trainer::read_idx(dir.file("train-images-idx3-ubyte"));
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{6, 8, 8}));
  EXPECT_EQ(images[0][0][5].item<int64_t>(), 5);
  EXPECT_EQ(images[1][0][0].item<int64_t>(), 64);
  const auto data = trainer::ImageDataset::from_directory(dir.path().string());
  EXPECT_EQ(data.train().size(), 6);
  EXPECT_EQ(data.test().size(), 4);
  EXPECT_EQ(data.image_size(), 8);
  EXPECT_EQ(data.classes(), 3);  // labels 2 (train) and 1 (test)
  const auto normalised = data.normalise(data.train().images);
  EXPECT_EQ(normalised.sizes(), (std::vector<int64_t>{6, 1, 8, 8}));
  EXPECT_NEAR(normalised.mean().item<double>(), 0.0, 1e-4);
}

TEST(ImageData, BadFilesAreClearErrors) {
  test_support::TempDir dir;
  auto expect_error = [&](const std::string& path, const std::string& fragment) {
    try {
      trainer::read_idx(path);
      ADD_FAILURE() << path << " was accepted";
    } catch (const coupling::DataError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error(dir.file("missing"), "cannot open IDX file");
  test_support::write_text(dir.file("text"), "hello, not an IDX file");
  expect_error(dir.file("text"), "is not an IDX file");
  test_support::write_text(dir.file("gz"), "\x1f\x8b compressed");
  expect_error(dir.file("gz"), "gzip-compressed");
  test_support::write_idx(dir.file("short"), {10, 8, 8}, bytes(100));
  expect_error(dir.file("short"), "truncated or corrupt");
  test_support::write_idx(dir.file("floats"), {2}, bytes(8), 0x0d);
  expect_error(dir.file("floats"), "element type 13");

  test_support::TempDir mismatched;
  write_mnist_dir(mismatched, 6, 4, 3);  // 4 test images, 3 labels
  try {
    trainer::ImageDataset::from_directory(mismatched.path().string());
    ADD_FAILURE() << "mismatched label file accepted";
  } catch (const coupling::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("do not belong together"), std::string::npos) << e.what();
  }
  EXPECT_THROW(trainer::ImageDataset::from_directory(dir.file("nowhere")), coupling::DataError);
}
