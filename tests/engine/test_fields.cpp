// The field registry against the Measurement it describes: every field present in a layout is
// defined with the shape its named axes give, every absent one is undefined, and the options'
// text forms round-trip.
#include "coupling/engine/fields.h"
#include "coupling/error.h"
#include "mixer_model.h"

#include <gtest/gtest.h>

#include <set>

namespace {

/// Every axis a size of its own (but the inherently equal pairs: token/basis_token,
/// layer/basis_layer, orientation/normalisation), so a field with two axes swapped fails:
/// 7 probes, 3 tokens, 4 blocks, 5 states, one K = 6 (rank 6), 12 block-tokens, 8 contexts, d = 16.
coupling::Measurement measure_everything(bool keep_jacobians) {
  at::manual_seed(5);
  auto adapter = mixer_adapter(MixerModel(32, 16, 4));
  coupling::MeasurementOptions options;
  options.k_grid = {6};
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {1, 3, 5};
  options.tokens.context_pairs = {{0, 5}, {2, 5}};
  options.keep_jacobians = keep_jacobians;
  return coupling::measure(*adapter, at::randint(32, {7, 6}, at::kLong), options);
}

TEST(Fields, EveryPresentFieldHasTheShapeOfItsAxes) {
  for (bool keep : {false, true}) {
    const auto m = measure_everything(keep);
    for (const auto& field : coupling::measurement_fields()) {
      const at::Tensor& value = m.*field.member;
      ASSERT_EQ(value.defined(), field.present.holds(m)) << field.name;
      if (!value.defined()) continue;
      EXPECT_EQ(value.sizes().vec(), coupling::field_shape(field, m)) << field.name;
      // Only layer linearity is pooled over the probes; every other field has a probe axis first.
      EXPECT_EQ(field.per_probe(), std::string(field.name) != "layer_linearity") << field.name;
      EXPECT_EQ(value.device().type(), c10::kCPU) << field.name;
    }
  }
}

TEST(Fields, NamesAreUniqueAndEveryAxisIsKnown) {
  std::set<std::string> names;
  for (const auto& field : coupling::measurement_fields()) {
    EXPECT_TRUE(names.insert(field.name).second) << field.name;
    if (field.logged == coupling::Logged::kPerProbeAndMean) {
      EXPECT_TRUE(names.insert(coupling::mean_name(field)).second) << field.name;
      EXPECT_GT(field.mean_axes, 0) << field.name;
    }
    for (const char* axis : field.axes) EXPECT_NO_THROW(coupling::measurement_axis(axis)) << field.name;
    EXPECT_NE(std::string(field.units), "") << field.name;
  }
  EXPECT_THROW(coupling::measurement_axis("no_such_axis"), coupling::Error);
}

TEST(Fields, LoggedBytesCountEveryLoggedFieldAndMean) {
  const auto m = measure_everything(true);
  int64_t expected = 0;
  for (const auto& field : coupling::measurement_fields()) {
    const at::Tensor& value = m.*field.member;
    if (field.logged == coupling::Logged::kNo || !value.defined()) continue;
    expected += 8 * value.numel();
    if (field.logged == coupling::Logged::kPerProbeAndMean) expected += 8 * coupling::field_mean(field, value).numel();
  }
  EXPECT_EQ(coupling::logged_bytes(m), expected);
}

TEST(Fields, FieldViewSelectsByAxisNameAndCoordinate) {
  const auto m = measure_everything(false);
  // token 3 is the second measured token; layer 2 the second block; "vju" orientation 1, "trace" normalisation 1.
  const auto view = coupling::field(m, "depth_coupling").sel("token", 3).sel("orientation", "vju").sel("layer", 2);
  EXPECT_EQ(view.axes(), (std::vector<std::string>{"probe", "normalisation", "k", "basis_layer"}));
  EXPECT_TRUE(at::equal(view.tensor(), m.depth_coupling.select(1, 1).select(1, 1).select(3, 1)));
  EXPECT_DOUBLE_EQ(coupling::field(m, "depth_mean_offdiag").sel("normalisation", "trace").sel("k", 6).mean(),
                   m.depth_mean_offdiag.select(3, 1).select(3, 0).to(at::kDouble).mean().item<double>());
  EXPECT_THROW(coupling::field(m, "depth_coupling").sel("token", 2), coupling::ConfigError);  // not measured
  EXPECT_THROW(coupling::field(m, "depth_coupling").sel("head", 0), coupling::ConfigError);
  EXPECT_THROW(coupling::field(m, "depth_coupling").sel("orientation", "uvj"), coupling::ConfigError);
  EXPECT_THROW(coupling::field(m, "jacobians"), coupling::ConfigError);  // not kept
  EXPECT_THROW(coupling::field(m, "no_such_field"), coupling::ConfigError);
}

TEST(MeasurementOptionsText, ParsesAndPrintsInOnePlace) {
  const auto options = coupling::MeasurementOptions::parse("4,8", "cls,-1", "cls:-1,2:3", "exact", {{"cls", 0}});
  EXPECT_EQ(options.k_grid, (std::vector<int64_t>{4, 8}));
  EXPECT_FALSE(options.cap_k_at_d);
  EXPECT_EQ(options.tokens.tokens, (std::vector<int64_t>{0, -1}));
  EXPECT_EQ(options.str(), "k_grid=4,8 k_fractions= tokens=list:0,-1 pairs=0:-1,2:3 spectrum=exact precision=fp32");
  // The default grid, given or not, is capped at d; its text is that of logs written before.
  for (const char* k : {"", "10,30,50"}) {
    const auto defaults = coupling::MeasurementOptions::parse(k, "last", "", "auto");
    EXPECT_TRUE(defaults.cap_k_at_d) << k;
    EXPECT_EQ(defaults.str(),
              "k_grid=10,30,50 k_fractions= tokens=last: pairs= spectrum=auto precision=fp32 "
              "oversample=20 power_iterations=4 seed=0");
  }
  EXPECT_THROW(coupling::MeasurementOptions::parse("4,x", "last", "", "auto"), coupling::ConfigError);
  EXPECT_THROW(coupling::MeasurementOptions::parse("4", "first", "", "auto"), coupling::ConfigError);
  EXPECT_THROW(coupling::MeasurementOptions::parse("4", "last", "1-2", "auto"), coupling::ConfigError);
  EXPECT_THROW(coupling::MeasurementOptions::parse("4", "last", "1:2:3", "auto"), coupling::ConfigError);
  EXPECT_THROW(coupling::MeasurementOptions::parse("4", "last", "", "svd"), coupling::ConfigError);
}

}  // namespace
