#include "coupling/engine/fields.h"

#include "coupling/error.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

namespace coupling {
namespace {

std::vector<int64_t> range(int64_t first, int64_t count) {
  std::vector<int64_t> values(static_cast<size_t>(std::max<int64_t>(count, 0)));
  std::iota(values.begin(), values.end(), first);
  return values;
}

int64_t token_count(const MeasurementLayout& l) { return static_cast<int64_t>(l.tokens.size()); }
int64_t pair_count(const MeasurementLayout& l) { return static_cast<int64_t>(l.context_pairs.size()); }

const Presence always{"always", [](const MeasurementLayout&) { return true; }};
const Presence several_tokens{"two or more tokens", [](const MeasurementLayout& l) { return token_count(l) >= 2; }};
const Presence block_tokens{"two or more tokens and L n <= max_set_size",
                            [](const MeasurementLayout& l) { return l.has_block_token_coupling; }};
const Presence context_pairs{"context pairs given", [](const MeasurementLayout& l) { return pair_count(l) > 0; }};
const Presence jacobians_kept{"keep_jacobians", [](const MeasurementLayout& l) { return l.keeps_jacobians; }};

#define COUPLING_UNPARENTHESISE(...) __VA_ARGS__

// Measurement as field_list.h makes it: a tensor member added by hand, outside the list (so
// without a registry entry: neither logged, nor gathered, nor moved to the CPU), fails here.
#define COUPLING_COUNT_FIELD(...) +1
constexpr size_t kListedFields = 0 COUPLING_MEASUREMENT_FIELDS(COUPLING_COUNT_FIELD);
#undef COUPLING_COUNT_FIELD
struct ListedMeasurement : MeasurementLayout {
  at::Tensor fields[kListedFields];
  MeasurementTimings timings;
  double peak_rss_mib;
};
static_assert(sizeof(Measurement) == sizeof(ListedMeasurement),
              "Measurement has a member that coupling/engine/field_list.h does not list: list it there");
}  // namespace

const std::vector<AxisSpec>& measurement_axes() {
  static const std::vector<AxisSpec> axes = {
      {"probe", "probe index (rows of /probes)", [](const MeasurementLayout& l) { return range(0, l.probes); }},
      {"token", "measured token position t (J_tt)", [](const MeasurementLayout& l) { return l.tokens; }},
      {"basis_token", "measured token position supplying the singular basis (column)",
       [](const MeasurementLayout& l) { return l.tokens; }},
      {"orientation",
       "0 = ujv (U2^T J1 V2), 1 = vju (V2^T J1 U2)",
       [](const MeasurementLayout&) {
         return std::vector<int64_t>{0, 1};
       },
       {"ujv", "vju"}},
      {"normalisation",
       "0 = norm (||S1||_F), 1 = trace (trace S1)",
       [](const MeasurementLayout&) {
         return std::vector<int64_t>{0, 1};
       },
       {"norm", "trace"}},
      {"k", "K: number of top singular pairs", [](const MeasurementLayout& l) { return l.k_grid; }},
      {"layer", "block l = 1..L (row: the Jacobian diagonalised)",
       [](const MeasurementLayout& l) { return range(1, l.blocks); }},
      {"basis_layer", "block supplying the singular basis (column)",
       [](const MeasurementLayout& l) { return range(1, l.blocks); }},
      {"state", "residual state index l = 0..L", [](const MeasurementLayout& l) { return range(0, l.blocks + 1); }},
      {"rank", "singular value index k = 1..Kmax",
       [](const MeasurementLayout& l) { return range(1, l.k_grid.empty() ? 0 : l.k_grid.back()); }},
      {"block_token", "(layer - 1) * n + i for measured token i of /measurement/token (row)",
       [](const MeasurementLayout& l) { return range(0, l.blocks * token_count(l)); }},
      {"basis_block_token", "(layer - 1) * n + i supplying the singular basis (column)",
       [](const MeasurementLayout& l) { return range(0, l.blocks * token_count(l)); }},
      {"context", "(layer - 1) * np + c for context pair c of /context_pairs (row)",
       [](const MeasurementLayout& l) { return range(0, l.blocks * pair_count(l)); }},
      {"basis_context", "(layer - 1) * np + c supplying the singular basis (column)",
       [](const MeasurementLayout& l) { return range(0, l.blocks * pair_count(l)); }},
      {"input_dim", "residual-stream coordinate of the input (Jacobian column)",
       [](const MeasurementLayout& l) { return range(0, l.d_model); }},
      {"output_dim", "residual-stream coordinate of the output (Jacobian row)",
       [](const MeasurementLayout& l) { return range(0, l.d_model); }},
      {"dim", "residual-stream coordinate", [](const MeasurementLayout& l) { return range(0, l.d_model); }},
  };
  return axes;
}

const std::vector<FieldSpec>& measurement_fields() {
  static const std::vector<FieldSpec> fields = {
#define COUPLING_FIELD_SPEC(name, axes, units, description, logged, mean_axes, presence, per_token)             \
  {#name,    &Measurement::name, {COUPLING_UNPARENTHESISE axes}, units, description, Logged::logged, mean_axes, \
   presence, per_token},
      COUPLING_MEASUREMENT_FIELDS(COUPLING_FIELD_SPEC)
#undef COUPLING_FIELD_SPEC
  };
  return fields;
}

const AxisSpec& measurement_axis(const std::string& name) {
  for (const auto& axis : measurement_axes()) {
    if (name == axis.name) return axis;
  }
  throw Error("the field registry has no axis '" + name + "'");
}

std::vector<int64_t> field_shape(const FieldSpec& field, const MeasurementLayout& layout) {
  std::vector<int64_t> shape;
  for (const char* axis : field.axes)
    shape.push_back(static_cast<int64_t>(measurement_axis(axis).values(layout).size()));
  return shape;
}

std::string mean_name(const FieldSpec& field) { return std::string(field.name) + "_avg"; }

at::Tensor field_mean(const FieldSpec& field, const at::Tensor& value) {
  std::vector<int64_t> dims(static_cast<size_t>(field.mean_axes));
  std::iota(dims.begin(), dims.end(), 0);
  return value.to(at::kDouble).mean(dims);
}

FieldView::FieldView(at::Tensor value, std::vector<std::string> axes, std::vector<std::vector<int64_t>> coordinates,
                     std::vector<std::vector<std::string>> labels)
    : value_(std::move(value)),
      axes_(std::move(axes)),
      coordinates_(std::move(coordinates)),
      labels_(std::move(labels)) {}

size_t FieldView::axis_index(const std::string& axis) const {
  const auto found = std::find(axes_.begin(), axes_.end(), axis);
  if (found == axes_.end()) throw ConfigError("this field has no axis '" + axis + "'");
  return static_cast<size_t>(found - axes_.begin());
}

FieldView FieldView::at_position(size_t axis, int64_t index) const {
  auto axes = axes_;
  auto coordinates = coordinates_;
  auto labels = labels_;
  axes.erase(axes.begin() + static_cast<std::ptrdiff_t>(axis));
  coordinates.erase(coordinates.begin() + static_cast<std::ptrdiff_t>(axis));
  labels.erase(labels.begin() + static_cast<std::ptrdiff_t>(axis));
  return FieldView(value_.select(static_cast<int64_t>(axis), index), axes, coordinates, labels);
}

FieldView FieldView::sel(const std::string& axis, int64_t value) const {
  const size_t a = axis_index(axis);
  const auto& values = coordinates_[a];
  const auto found = std::find(values.begin(), values.end(), value);
  if (found == values.end()) {
    throw ConfigError("axis '" + axis + "' has no coordinate " + std::to_string(value) + " in this measurement");
  }
  return at_position(a, found - values.begin());
}

FieldView FieldView::sel(const std::string& axis, const std::string& label) const {
  const size_t a = axis_index(axis);
  const auto& names = labels_[a];
  const auto found = std::find(names.begin(), names.end(), label);
  if (found == names.end()) throw ConfigError("axis '" + axis + "' has no label '" + label + "'");
  return at_position(a, found - names.begin());
}

double FieldView::mean() const { return value_.to(at::kDouble).mean().item<double>(); }

FieldView field(const Measurement& m, const std::string& name) {
  for (const auto& spec : measurement_fields()) {
    if (name != spec.name) continue;
    const at::Tensor& value = m.*spec.member;
    if (!value.defined()) throw ConfigError("this measurement does not hold " + name + " (" + spec.present.when + ")");
    std::vector<std::string> axes;
    std::vector<std::vector<int64_t>> coordinates;
    std::vector<std::vector<std::string>> labels;
    for (const char* axis : spec.axes) {
      const auto& described = measurement_axis(axis);
      axes.emplace_back(axis);
      coordinates.push_back(described.values(m));
      labels.emplace_back(described.labels.begin(), described.labels.end());
    }
    return FieldView(value, std::move(axes), std::move(coordinates), std::move(labels));
  }
  throw ConfigError("a measurement has no field '" + name + "' (coupling/engine/field_list.h lists them)");
}

int64_t logged_bytes(const MeasurementLayout& layout) {
  int64_t bytes = 0;
  for (const auto& field : measurement_fields()) {
    if (field.logged == Logged::kNo || !field.present.holds(layout)) continue;
    const auto shape = field_shape(field, layout);
    bytes += 8 * std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
    if (field.logged == Logged::kPerProbeAndMean) {
      bytes += 8 * std::accumulate(shape.begin() + field.mean_axes, shape.end(), int64_t{1}, std::multiplies<>());
    }
  }
  return bytes;
}

}  // namespace coupling
