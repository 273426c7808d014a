// Trajectory metrics of one token's path x^0..x^L through the residual stream (docs/metrics.md
// section 4), and the singular-value-vs-depth fit. Plain doubles in, plain doubles out.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace coupling {

/// Least-squares line y = intercept + slope x with its coefficient of determination.
/// R^2 = 1 - SS_res / SS_tot; defined as 1 when y is constant (SS_tot = 0) and fitted exactly.
struct LinearFit {
  double slope = 0.0;
  double intercept = 0.0;
  double r2 = 0.0;
};

/// Throws coupling::ConfigError for fewer than 2 points or mismatched sizes.
LinearFit fit_line(const std::vector<double>& x, const std::vector<double>& y);

/// Population standard deviation / mean. NaN for an empty input or a zero mean.
double coefficient_of_variation(const std::vector<double>& values);

struct TrajectoryMetrics {
  std::vector<double> norms;         ///< ||x^l||, l = 0..L
  std::vector<double> step_lengths;  ///< d_l = ||x^l - x^{l-1}||, l = 1..L
  /// Line-shape score L / ||sum_l (x^l - x^{l-1}) / d_l|| (>= 1; 1 = straight). Zero-length steps
  /// add nothing to the end-to-end distance but still count in L.
  double line_shape_score = 0.0;
  LinearFit log_norm_fit;      ///< log ||x^l|| = a + b l over l = 0..L
  double norm_growth = 0.0;    ///< exp(b): growth factor per layer
  double step_cv = 0.0;        ///< CV(d_l): 0 = equispaced steps
  double step_ratio_cv = 0.0;  ///< CV(d_{l+1} / d_l): 0 = geometric spacing (NaN for L < 2)
  LinearFit log_step_fit;      ///< log d_l = a + b l over l = 1..L (NaN fields for L < 2)
};

/// Metrics of one trajectory `states` ([L + 1, d], any float dtype).
TrajectoryMetrics trajectory_metrics(const at::Tensor& states);

/// Fit of 1 / s_1(J^l) against depth l = 1..L, as in the paper's code. `top_singular` = s_1 per block.
LinearFit inverse_sigma_fit(const std::vector<double>& top_singular);

/// Every scalar a measured token's trajectory gives (the [probe, token] fields of field_list.h).
struct TokenScalars {
  TrajectoryMetrics trajectory;
  LinearFit inverse_sigma;
};

}  // namespace coupling
