#include "measurement_dict.h"

#include "coupling/engine/fields.h"

#include <ATen/ATen.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>
#include <algorithm>

#include <string>
#include <vector>

namespace py = pybind11;

namespace coupling::python {

py::dict measurement_dict(const Measurement& m) {
  py::dict variables;
  std::vector<std::string> used_axes;
  auto add = [&](const std::string& name, const std::vector<const char*>& axes, const at::Tensor& value,
                 const std::string& units, const std::string& description) {
    py::tuple axis_names(axes.size());
    for (size_t i = 0; i < axes.size(); ++i) {
      axis_names[i] = py::str(axes[i]);
      used_axes.emplace_back(axes[i]);
    }
    variables[py::str(name)] =
        py::make_tuple(axis_names, value.to(at::kCPU, at::kDouble).contiguous(), units, description);
  };
  for (const auto& field : measurement_fields()) {
    const at::Tensor& value = m.*field.member;
    if (field.logged == Logged::kNo || !field.present.holds(m) || !value.defined()) continue;
    add(field.name, field.axes, value, field.units, field.description);
    if (field.logged == Logged::kPerProbeAndMean) {
      const std::vector<const char*> kept(field.axes.begin() + field.mean_axes, field.axes.end());
      add(mean_name(field), kept, field_mean(field, value), field.units,
          "mean over the first " + std::to_string(field.mean_axes) + " axes of " + field.name + " (" +
              field.description + ")");
    }
  }
  py::dict coordinates, labels;
  for (const auto& axis : measurement_axes()) {
    if (std::find(used_axes.begin(), used_axes.end(), axis.name) == used_axes.end()) continue;
    coordinates[axis.name] = axis.values(m);
    if (!axis.labels.empty()) labels[axis.name] = std::vector<std::string>(axis.labels.begin(), axis.labels.end());
  }
  py::dict attributes;
  attributes["matrix_free"] = m.matrix_free;
  attributes["depth_band"] = m.depth_band;
  attributes["peak_rss_mib"] = m.peak_rss_mib;
  attributes["seconds_forward"] = m.timings.forward;
  attributes["seconds_jacobians"] = m.timings.jacobians;
  attributes["seconds_spectra"] = m.timings.spectra;
  attributes["seconds_coupling"] = m.timings.coupling;
  attributes["seconds_nulls"] = m.timings.nulls;
  attributes["seconds_trajectories"] = m.timings.trajectories;
  attributes["seconds_linearity"] = m.timings.linearity;
  attributes["seconds_total"] = m.timings.total;
  attributes["headline"] = headline(m);
  // The headline scalars (smallest K, ujv/norm; means over probes and tokens), from the summaries
  // the headline line and the tools print.
  attributes["headline_k"] = m.k_grid.front();
  attributes["headline_m"] = depth_coupling_summary(m)[0].item<double>();
  attributes["headline_m_null"] = depth_coupling_null_summary(m).mean[0].item<double>();
  attributes["headline_lss"] = m.line_shape_score.mean().item<double>();
  attributes["headline_norm_growth_rate"] = m.norm_growth_rate.mean().item<double>();
  py::dict result;
  result["variables"] = variables;
  result["coordinates"] = coordinates;
  result["labels"] = labels;
  result["attributes"] = attributes;
  return result;
}

}  // namespace coupling::python
