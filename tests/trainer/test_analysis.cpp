// Probe inputs of coupling-analyze --torchscript: IDX images (seeded, in [0, 1]), text windows,
// and the errors for zero or several sources and too few images.
#include "coupling/error.h"
#include "trainer/apps/analysis.h"
#include "trainer_support.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

TEST(AnalysisProbes, IdxImagesAreSeededAndScaled) {
  test_support::TempDir dir;
  std::vector<uint8_t> pixels(10 * 16);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i);
  test_support::write_idx(dir.file("images"), {10, 4, 4}, pixels);
  trainer::ProbeSource source;
  source.idx = dir.file("images");
  source.count = 3;
  const auto probes = trainer::load_probes(source);
  EXPECT_EQ(probes.sizes(), (std::vector<int64_t>{3, 1, 4, 4}));
  EXPECT_GE(probes.min().item<double>(), 0.0);
  EXPECT_LE(probes.max().item<double>(), 1.0);
  EXPECT_TRUE(at::equal(probes, trainer::load_probes(source)));  // the same seed, the same images
  source.seed = 2;
  EXPECT_FALSE(at::equal(probes, trainer::load_probes(source)));
  source.count = 11;
  EXPECT_THROW(trainer::load_probes(source), coupling::DataError);
}

TEST(AnalysisProbes, TextWindowsAndSourceErrors) {
  test_support::TempDir dir;
  test_support::write_text(dir.file("text"), "and the earth was without form, and void. ", 100);
  trainer::ProbeSource source;
  source.text = dir.file("text");
  source.count = 2;
  source.length = 16;
  const auto probes = trainer::load_probes(source);
  EXPECT_EQ(probes.sizes(), (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(probes.scalar_type(), at::kLong);
  source.idx = dir.file("text");  // two sources
  EXPECT_THROW(trainer::load_probes(source), coupling::ConfigError);
  EXPECT_THROW(trainer::load_probes(trainer::ProbeSource{}), coupling::ConfigError);  // none
}
