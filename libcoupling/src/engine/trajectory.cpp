#include "coupling/engine/trajectory.h"

#include "coupling/error.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <numeric>

namespace coupling {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<double> to_vector(const at::Tensor& t) {
  const auto c = t.to(at::kDouble).cpu().contiguous();
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

std::vector<double> indices(size_t count, double first) {
  std::vector<double> out(count);
  std::iota(out.begin(), out.end(), first);
  return out;
}

std::vector<double> logs(const std::vector<double>& values) {
  std::vector<double> out;
  out.reserve(values.size());
  for (double v : values) out.push_back(std::log(v));
  return out;
}

}  // namespace

LinearFit fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 2) {
    throw ConfigError("fit_line needs at least 2 points and as many x as y values");
  }
  const double n = static_cast<double>(x.size());
  const double mean_x = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double mean_y = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxx = 0.0, sxy = 0.0, syy = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxx += (x[i] - mean_x) * (x[i] - mean_x);
    sxy += (x[i] - mean_x) * (y[i] - mean_y);
    syy += (y[i] - mean_y) * (y[i] - mean_y);
  }
  LinearFit fit;
  fit.slope = sxx > 0.0 ? sxy / sxx : 0.0;
  fit.intercept = mean_y - fit.slope * mean_x;
  double residual = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double e = y[i] - (fit.intercept + fit.slope * x[i]);
    residual += e * e;
  }
  fit.r2 = syy > 0.0 ? 1.0 - residual / syy : (residual == 0.0 ? 1.0 : 0.0);
  return fit;
}

double coefficient_of_variation(const std::vector<double>& values) {
  if (values.empty()) return kNaN;
  const double n = static_cast<double>(values.size());
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  if (mean == 0.0) return kNaN;
  double var = 0.0;
  for (double v : values) var += (v - mean) * (v - mean);
  return std::sqrt(var / n) / mean;
}

TrajectoryMetrics trajectory_metrics(const at::Tensor& states) {
  if (states.dim() != 2 || states.size(0) < 2) {
    throw ConfigError("trajectory_metrics expects states [L + 1, d] with L >= 1");
  }
  const auto x = states.to(at::kDouble);
  const int64_t layers = x.size(0) - 1;
  const auto steps = x.narrow(0, 1, layers) - x.narrow(0, 0, layers);  // [L, d]
  const auto step_norms = steps.norm(2, 1);

  TrajectoryMetrics m;
  m.norms = to_vector(x.norm(2, 1));
  m.step_lengths = to_vector(step_norms);
  const auto unit_steps =
      at::where(step_norms.unsqueeze(1) > 0, steps / step_norms.unsqueeze(1), at::zeros_like(steps));
  m.line_shape_score = static_cast<double>(layers) / unit_steps.sum(0).norm().item<double>();
  m.log_norm_fit = fit_line(indices(m.norms.size(), 0.0), logs(m.norms));
  m.norm_growth = std::exp(m.log_norm_fit.slope);
  m.step_cv = coefficient_of_variation(m.step_lengths);
  if (layers >= 2) {
    std::vector<double> ratios;
    for (int64_t l = 0; l + 1 < layers; ++l) ratios.push_back(m.step_lengths[l + 1] / m.step_lengths[l]);
    m.step_ratio_cv = coefficient_of_variation(ratios);
    m.log_step_fit = fit_line(indices(m.step_lengths.size(), 1.0), logs(m.step_lengths));
  } else {
    m.step_ratio_cv = kNaN;
    m.log_step_fit = {kNaN, kNaN, kNaN};
  }
  return m;
}

LinearFit inverse_sigma_fit(const std::vector<double>& top_singular) {
  if (top_singular.size() < 2) return {kNaN, kNaN, kNaN};
  std::vector<double> inverse;
  for (double s : top_singular) inverse.push_back(1.0 / s);
  return fit_line(indices(top_singular.size(), 1.0), inverse);
}

}  // namespace coupling
