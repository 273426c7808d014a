// The field registry: every tensor a Measurement holds, described once (name, named axes,
// units, description, whether and how it is logged). Everything that walks the fields walks
// this table: moving results to the CPU, the data-parallel gather of probe slices, the HDF5
// schema (datasets, dimension scales, attributes, means), the size cap, the docs test.
//
// The fields themselves are listed once, in field_list.h, which generates both the members of
// Measurement and this table. Axes are named by AxisSpec entries (fields.cpp), which give each
// axis its size and its coordinate values for a layout. Adding a metric: docs/design.md.
#pragma once

#include "coupling/engine/measurement.h"
#include "coupling/engine/trajectory.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace coupling {

/// A named axis of the registry's fields (an HDF5 dimension scale, an xarray coordinate).
struct AxisSpec {
  const char* name;
  const char* description;
  /// Coordinate values of this axis for a layout (its size is their count).
  std::vector<int64_t> (*values)(const MeasurementLayout& layout);
  /// Names of the coded values 0, 1, ... of a categorical axis (logged as CF flag_meanings); or empty.
  std::vector<const char*> labels = {};
};

/// How a field reaches the log.
enum class Logged {
  kNo,               ///< returned in the Measurement only (large or raw: Jacobians, states)
  kPerProbe,         ///< one dataset, every axis
  kPerProbeAndMean,  ///< that, plus NAME_avg: the mean over the first `mean_axes` axes
};

/// When a measurement holds a field: a rule in words (for the docs) and as code.
struct Presence {
  const char* when;
  bool (*holds)(const MeasurementLayout& layout);
};

struct FieldSpec {
  const char* name;
  at::Tensor Measurement::*member;
  /// AxisSpec names, one per tensor dimension; the first is "probe", but for a field pooled over
  /// all probes (layer_linearity), which has no probe axis.
  std::vector<const char*> axes;
  const char* units;  ///< "1" for dimensionless quantities
  const char* description;
  Logged logged;
  int mean_axes;  ///< kPerProbeAndMean: how many leading axes the NAME_avg mean runs over
  Presence present;
  /// A [probe, token] trajectory scalar: its value for one token; nullptr for other fields.
  double (*per_token)(const TokenScalars& scalars);

  /// Whether the field has a probe axis (its first); else it is computed from all probes at once.
  bool per_probe() const { return !axes.empty() && std::string(axes.front()) == "probe"; }
};

/// Every tensor field of Measurement, in a fixed order.
const std::vector<FieldSpec>& measurement_fields();
/// Every axis the fields name.
const std::vector<AxisSpec>& measurement_axes();
/// The axis called `name`; throws coupling::Error for an unknown name.
const AxisSpec& measurement_axis(const std::string& name);

/// The shape the field takes in a measurement with `layout` (its axes' sizes).
std::vector<int64_t> field_shape(const FieldSpec& field, const MeasurementLayout& layout);
/// NAME_avg of a kPerProbeAndMean field.
std::string mean_name(const FieldSpec& field);
/// The mean over the field's first mean_axes axes (float64).
at::Tensor field_mean(const FieldSpec& field, const at::Tensor& value);
/// Bytes the logged fields (and their means) of one measurement take as float64.
int64_t logged_bytes(const MeasurementLayout& layout);

/// A field of a measurement with its named axes and their coordinates: select by name, as xarray
/// does, instead of by position. field(m, "depth_mean_offdiag").sel("k", 10).sel("orientation",
/// "ujv") keeps the axes probe, token and normalisation.
class FieldView {
 public:
  FieldView(at::Tensor value, std::vector<std::string> axes, std::vector<std::vector<int64_t>> coordinates,
            std::vector<std::vector<std::string>> labels);
  /// The slice where axis `axis` has coordinate `value` (a K, a layer, a token); the axis goes.
  /// Throws coupling::ConfigError for an axis the field lacks or a value its axis lacks.
  FieldView sel(const std::string& axis, int64_t value) const;
  /// The slice where a categorical axis has label `label` ("ujv", "trace").
  FieldView sel(const std::string& axis, const std::string& label) const;
  /// The mean over the axes left (float64).
  double mean() const;

  const at::Tensor& tensor() const { return value_; }
  const std::vector<std::string>& axes() const { return axes_; }

 private:
  FieldView at_position(size_t axis, int64_t index) const;
  size_t axis_index(const std::string& axis) const;

  at::Tensor value_;
  std::vector<std::string> axes_;
  std::vector<std::vector<int64_t>> coordinates_;
  std::vector<std::vector<std::string>> labels_;
};

/// The field called `name` of `m` (a FieldSpec name); throws coupling::ConfigError for an unknown
/// name or a field this measurement does not hold.
FieldView field(const Measurement& m, const std::string& name);

}  // namespace coupling
