// The largest difference between two measurements of the same model, over the fields that both
// paths of the engine compute alike (coupling, its means and the spectra): how the matrix-free
// path is checked against the materialised one. NaN equals NaN; NaN against a number counts as
// infinitely different.
#pragma once

#include "coupling/engine/fields.h"
#include "coupling/engine/measurement.h"

#include <ATen/ATen.h>

#include <limits>
#include <string>

namespace test_support {

/// max |a - b| over the fields both hold, and the field where it is; jacobian_frobenius (an
/// estimate on the matrix-free path) and the uncoupled nulls made from it, the trajectories and
/// the Jacobians are left out.
inline std::pair<double, std::string> largest_difference(const coupling::Measurement& a,
                                                         const coupling::Measurement& b) {
  std::pair<double, std::string> largest{0.0, ""};
  for (const auto& spec : coupling::measurement_fields()) {
    const std::string name = spec.name;
    const bool null = name.find("_null") != std::string::npos;
    if (name == "jacobian_frobenius" || null || name == "jacobians" || spec.per_token || name == "trajectories" ||
        name == "residual_norms" || name == "step_lengths") {
      continue;
    }
    const auto& x = a.*spec.member;
    const auto& y = b.*spec.member;
    if (!x.defined() || !y.defined()) continue;
    const auto xd = x.to(at::kDouble), yd = y.to(at::kDouble);
    const auto same_nan = at::isnan(xd).eq(at::isnan(yd)).all().item<bool>();
    const double difference =
        !same_nan ? std::numeric_limits<double>::infinity() : at::nan_to_num(xd - yd, 0.0).abs().max().item<double>();
    if (difference > largest.first || largest.second.empty()) largest = {difference, name};
  }
  return largest;
}

/// largest_difference between the materialised and the matrix-free measurement of `probes` with
/// `options` (whose jacobian_path is overridden).
inline std::pair<double, std::string> path_difference(coupling::ModelAdapter& adapter, const at::Tensor& probes,
                                                      coupling::MeasurementOptions options) {
  options.jacobian_path = coupling::JacobianPath::kMaterialised;
  const auto materialised = coupling::measure(adapter, probes, options);
  options.jacobian_path = coupling::JacobianPath::kMatrixFree;
  const auto free = coupling::measure(adapter, probes, options);
  if (materialised.matrix_free || !free.matrix_free) return {std::numeric_limits<double>::infinity(), "the paths"};
  return largest_difference(materialised, free);
}

}  // namespace test_support
