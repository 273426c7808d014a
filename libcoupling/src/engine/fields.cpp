#include "coupling/engine/fields.h"

#include "coupling/error.h"

#include <ATen/ATen.h>

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

// Coupling-variant axes, shared by every coupling field.
#define COUPLING_VARIANT_AXES "orientation", "normalisation", "k"

}  // namespace

const std::vector<AxisSpec>& measurement_axes() {
  static const std::vector<AxisSpec> axes = {
      {"probe", "probe index (rows of /probes)", [](const MeasurementLayout& l) { return range(0, l.probes); }},
      {"token", "measured token position t (J_tt)", [](const MeasurementLayout& l) { return l.tokens; }},
      {"basis_token", "measured token position supplying the singular basis (column)",
       [](const MeasurementLayout& l) { return l.tokens; }},
      {"orientation", "0 = ujv (U2^T J1 V2), 1 = vju (V2^T J1 U2)",
       [](const MeasurementLayout&) { return std::vector<int64_t>{0, 1}; }, {"ujv", "vju"}},
      {"normalisation", "0 = norm (||S1||_F), 1 = trace (trace S1)",
       [](const MeasurementLayout&) { return std::vector<int64_t>{0, 1}; }, {"norm", "trace"}},
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
  using M = Measurement;
  static const std::vector<FieldSpec> fields = {
      // Coupling (docs/metrics.md section 3). Lower m = more coupled.
      {"depth_coupling", &M::depth_coupling, {"probe", "token", COUPLING_VARIANT_AXES, "layer", "basis_layer"}, "1",
       "m_K(J^layer_tt, J^basis_layer_tt); lower = more coupled", Logged::kPerProbe, 0, always},
      {"depth_mean_offdiag", &M::depth_mean_offdiag, {"probe", "token", COUPLING_VARIANT_AXES}, "1",
       "mean of depth_coupling over layer != basis_layer", Logged::kPerProbeAndMean, 2, always},
      {"depth_mean_adjacent", &M::depth_mean_adjacent, {"probe", "token", COUPLING_VARIANT_AXES}, "1",
       "mean of depth_coupling over |layer - basis_layer| = 1", Logged::kPerProbeAndMean, 2, always},
      {"token_coupling", &M::token_coupling, {"probe", "layer", COUPLING_VARIANT_AXES, "token", "basis_token"}, "1",
       "m_K(J^layer_tt, J^layer_t't') across the measured tokens t (row) and t' (column)", Logged::kPerProbe, 0,
       several_tokens},
      {"token_mean_offdiag", &M::token_mean_offdiag, {"probe", "layer", COUPLING_VARIANT_AXES}, "1",
       "mean of token_coupling over token != basis_token", Logged::kPerProbeAndMean, 2, several_tokens},
      {"block_token_coupling", &M::block_token_coupling,
       {"probe", COUPLING_VARIANT_AXES, "block_token", "basis_block_token"}, "1",
       "m_K between every (block, token) Jacobian J^l_tt, index (l - 1) * n + token", Logged::kPerProbe, 0,
       block_tokens},
      {"block_token_mean_offdiag", &M::block_token_mean_offdiag, {"probe", COUPLING_VARIANT_AXES}, "1",
       "mean of block_token_coupling over its off-diagonal", Logged::kPerProbeAndMean, 1, block_tokens},
      {"context_coupling", &M::context_coupling, {"probe", COUPLING_VARIANT_AXES, "context", "basis_context"}, "1",
       "m_K between every (block, context pair) Jacobian J^l_{t1 t2}, index (l - 1) * np + pair", Logged::kPerProbe,
       0, context_pairs},
      {"context_same_input", &M::context_same_input, {"probe", COUPLING_VARIANT_AXES}, "1",
       "mean of context_coupling over off-diagonal entries whose Jacobians share the input token t1",
       Logged::kPerProbeAndMean, 1, context_pairs},
      {"context_same_output", &M::context_same_output, {"probe", COUPLING_VARIANT_AXES}, "1",
       "mean of context_coupling over off-diagonal entries whose Jacobians share the output token t2",
       Logged::kPerProbeAndMean, 1, context_pairs},
      // Spectra.
      {"singular_values", &M::singular_values, {"probe", "token", "layer", "rank"}, "1",
       "top singular values of J^layer_tt", Logged::kPerProbe, 0, always},
      {"jacobian_frobenius", &M::jacobian_frobenius, {"probe", "token", "layer"}, "1",
       "Frobenius norm of J^layer_tt", Logged::kPerProbe, 0, always},
      // Trajectories (docs/metrics.md section 4).
      {"residual_norms", &M::residual_norms, {"probe", "token", "state"}, "residual-stream units",
       "||x^l|| for l = 0..L", Logged::kPerProbe, 0, always},
      {"step_lengths", &M::step_lengths, {"probe", "token", "layer"}, "residual-stream units",
       "||x^l - x^(l-1)|| for l = 1..L", Logged::kPerProbe, 0, always},
      {"line_shape_score", &M::line_shape_score, {"probe", "token"}, "1", "LSS >= 1; 1 = straight trajectory",
       Logged::kPerProbe, 0, always},
      {"norm_growth_rate", &M::norm_growth_rate, {"probe", "token"}, "nats/block",
       "slope b of log||x^l|| = a + b l", Logged::kPerProbe, 0, always},
      {"norm_growth_factor", &M::norm_growth_factor, {"probe", "token"}, "1/block", "exp(b): growth factor per block",
       Logged::kPerProbe, 0, always},
      {"norm_growth_r2", &M::norm_growth_r2, {"probe", "token"}, "1", "R^2 of the log-norm fit", Logged::kPerProbe, 0,
       always},
      {"step_cv", &M::step_cv, {"probe", "token"}, "1", "CV of step lengths", Logged::kPerProbe, 0, always},
      {"step_ratio_cv", &M::step_ratio_cv, {"probe", "token"}, "1",
       "CV of consecutive step-length ratios (0 = geometric spacing)", Logged::kPerProbe, 0, always},
      {"log_step_rate", &M::log_step_rate, {"probe", "token"}, "nats/block", "slope of log step length against l",
       Logged::kPerProbe, 0, always},
      {"log_step_r2", &M::log_step_r2, {"probe", "token"}, "1", "R^2 of the log-step fit", Logged::kPerProbe, 0,
       always},
      {"inverse_sigma_slope", &M::inverse_sigma_slope, {"probe", "token"}, "1/block", "slope of 1/s_1(J^l) against l",
       Logged::kPerProbe, 0, always},
      {"inverse_sigma_r2", &M::inverse_sigma_r2, {"probe", "token"}, "1", "R^2 of the inverse-sigma fit",
       Logged::kPerProbe, 0, always},
      // Returned only.
      {"trajectories", &M::trajectories, {"probe", "token", "state", "dim"}, "residual-stream units",
       "residual states x^0..x^L of the measured tokens", Logged::kNo, 0, always},
      {"jacobians", &M::jacobians, {"probe", "token", "layer", "output_dim", "input_dim"}, "1",
       "J^layer_tt (MeasurementOptions::keep_jacobians)", Logged::kNo, 0, jacobians_kept},
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
  for (const char* axis : field.axes) shape.push_back(static_cast<int64_t>(measurement_axis(axis).values(layout).size()));
  return shape;
}

std::string mean_name(const FieldSpec& field) { return std::string(field.name) + "_avg"; }

at::Tensor field_mean(const FieldSpec& field, const at::Tensor& value) {
  std::vector<int64_t> dims(static_cast<size_t>(field.mean_axes));
  std::iota(dims.begin(), dims.end(), 0);
  return value.to(at::kDouble).mean(dims);
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
