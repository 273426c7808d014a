// The one list of a Measurement's tensor fields (an X-macro): it declares the members of
// coupling::Measurement (measurement.h) and generates the field registry (fields.cpp), so a
// field cannot be declared without its registry entry. Each entry is
//   FIELD(name, (axes...), units, description, how it is logged, mean axes, presence, per-token value)
// with the axes and the presence rules of fields.cpp. The per-token value (or nullptr) fills the
// [probe, token] trajectory scalars from one token's TokenScalars (measurement.cpp).
// Adding a metric: docs/design.md.
#pragma once

// One entry per field, aligned by hand:
// clang-format off
#define COUPLING_VARIANT_AXES "orientation", "normalisation", "k"

// The uncoupled null of a coupling summary: SUMMARY_null (its mean, with SUMMARY_null_avg) and
// SUMMARY_null_sd, on the summary's axes.
#define COUPLING_NULL_OF(FIELD, summary, axes, mean_axes, presence)                                                \
  FIELD(summary##_null, axes, "1", #summary " under the uncoupled null (mean)", kPerProbeAndMean, mean_axes,       \
        presence, nullptr)                                                                                          \
  FIELD(summary##_null_sd, axes, "1", "standard deviation of " #summary " under the uncoupled null", kPerProbe, 0, \
        presence, nullptr)

#define COUPLING_MEASUREMENT_FIELDS(FIELD)                                                                          \
  /* Coupling (docs/metrics.md section 3). Lower m = more coupled. */                                              \
  FIELD(depth_coupling, ("probe", "token", COUPLING_VARIANT_AXES, "layer", "basis_layer"), "1",                     \
        "m_K(J^layer_tt, J^basis_layer_tt); lower = more coupled", kPerProbe, 0, always, nullptr)                   \
  FIELD(depth_mean_offdiag, ("probe", "token", COUPLING_VARIANT_AXES), "1",                                         \
        "mean of depth_coupling over layer != basis_layer (inside the depth band, if any)", kPerProbeAndMean, 2,    \
        always, nullptr)                                                                                            \
  FIELD(depth_mean_adjacent, ("probe", "token", COUPLING_VARIANT_AXES), "1",                                        \
        "mean of depth_coupling over |layer - basis_layer| = 1", kPerProbeAndMean, 2, always, nullptr)              \
  FIELD(token_coupling, ("probe", "layer", COUPLING_VARIANT_AXES, "token", "basis_token"), "1",                     \
        "m_K(J^layer_tt, J^layer_t't') across the measured tokens t (row) and t' (column)", kPerProbe, 0,           \
        several_tokens, nullptr)                                                                                    \
  FIELD(token_mean_offdiag, ("probe", "layer", COUPLING_VARIANT_AXES), "1",                                         \
        "mean of token_coupling over token != basis_token", kPerProbeAndMean, 2, several_tokens, nullptr)           \
  FIELD(block_token_coupling, ("probe", COUPLING_VARIANT_AXES, "block_token", "basis_block_token"), "1",            \
        "m_K between every (block, token) Jacobian J^l_tt, index (l - 1) * n + token", kPerProbe, 0, block_tokens,  \
        nullptr)                                                                                                    \
  FIELD(block_token_mean_offdiag, ("probe", COUPLING_VARIANT_AXES), "1",                                            \
        "mean of block_token_coupling over its off-diagonal (inside the depth band, if any)", kPerProbeAndMean, 1,  \
        block_tokens, nullptr)                                                                                      \
  FIELD(context_coupling, ("probe", COUPLING_VARIANT_AXES, "context", "basis_context"), "1",                        \
        "m_K between every (block, context pair) Jacobian J^l_{t1 t2}, index (l - 1) * np + pair", kPerProbe, 0,    \
        context_pairs, nullptr)                                                                                     \
  FIELD(context_same_input, ("probe", COUPLING_VARIANT_AXES), "1",                                                  \
        "mean of context_coupling over off-diagonal entries whose Jacobians share the input token t1 (inside "      \
        "the depth band, if any)",                                                                                  \
        kPerProbeAndMean, 1, context_pairs, nullptr)                                                                \
  FIELD(context_same_output, ("probe", COUPLING_VARIANT_AXES), "1",                                                 \
        "mean of context_coupling over off-diagonal entries whose Jacobians share the output token t2 (inside "     \
        "the depth band, if any)",                                                                                  \
        kPerProbeAndMean, 1, context_pairs, nullptr)                                                                \
  /* The uncoupled null of m_K (docs/metrics.md section 3.1): mean and sd over Haar bases. */                       \
  FIELD(depth_coupling_null, ("probe", "token", COUPLING_VARIANT_AXES, "layer"), "1",                               \
        "m_K of J^layer_tt against Haar-random bases: the null of every entry of its depth_coupling row (mean)",    \
        kPerProbe, 0, always, nullptr)                                                                              \
  FIELD(depth_coupling_null_sd, ("probe", "token", COUPLING_VARIANT_AXES, "layer"), "1",                            \
        "standard deviation of m_K under the null of depth_coupling_null", kPerProbe, 0, always, nullptr)           \
  COUPLING_NULL_OF(FIELD, depth_mean_offdiag, ("probe", "token", COUPLING_VARIANT_AXES), 2, always)                 \
  COUPLING_NULL_OF(FIELD, depth_mean_adjacent, ("probe", "token", COUPLING_VARIANT_AXES), 2, always)                \
  COUPLING_NULL_OF(FIELD, token_mean_offdiag, ("probe", "layer", COUPLING_VARIANT_AXES), 2, several_tokens)         \
  COUPLING_NULL_OF(FIELD, block_token_mean_offdiag, ("probe", COUPLING_VARIANT_AXES), 1, block_tokens)              \
  /* Spectra. */                                                                                                    \
  FIELD(singular_values, ("probe", "token", "layer", "rank"), "1", "top singular values of J^layer_tt", kPerProbe,  \
        0, always, nullptr)                                                                                         \
  FIELD(jacobian_frobenius, ("probe", "token", "layer"), "1", "Frobenius norm of J^layer_tt", kPerProbe, 0, always, \
        nullptr)                                                                                                    \
  /* Trajectories (docs/metrics.md section 4). */                                                                   \
  FIELD(residual_norms, ("probe", "token", "state"), "residual-stream units", "||x^l|| for l = 0..L", kPerProbe, 0, \
        always, nullptr)                                                                                            \
  FIELD(step_lengths, ("probe", "token", "layer"), "residual-stream units", "||x^l - x^(l-1)|| for l = 1..L",       \
        kPerProbe, 0, always, nullptr)                                                                              \
  FIELD(line_shape_score, ("probe", "token"), "1", "LSS >= 1; 1 = straight trajectory", kPerProbe, 0, always,       \
        [](const TokenScalars& s) { return s.trajectory.line_shape_score; })                                        \
  FIELD(norm_growth_rate, ("probe", "token"), "nats/block", "slope b of log||x^l|| = a + b l", kPerProbe, 0,        \
        always, [](const TokenScalars& s) { return s.trajectory.log_norm_fit.slope; })                              \
  FIELD(norm_growth_factor, ("probe", "token"), "1/block", "exp(b): growth factor per block", kPerProbe, 0, always, \
        [](const TokenScalars& s) { return s.trajectory.norm_growth; })                                             \
  FIELD(norm_growth_r2, ("probe", "token"), "1", "R^2 of the log-norm fit", kPerProbe, 0, always,                   \
        [](const TokenScalars& s) { return s.trajectory.log_norm_fit.r2; })                                         \
  FIELD(step_cv, ("probe", "token"), "1", "CV of step lengths", kPerProbe, 0, always,                               \
        [](const TokenScalars& s) { return s.trajectory.step_cv; })                                                 \
  FIELD(step_ratio_cv, ("probe", "token"), "1", "CV of consecutive step-length ratios (0 = geometric spacing)",      \
        kPerProbe, 0, always, [](const TokenScalars& s) { return s.trajectory.step_ratio_cv; })                     \
  FIELD(log_step_rate, ("probe", "token"), "nats/block", "slope of log step length against l", kPerProbe, 0,        \
        always, [](const TokenScalars& s) { return s.trajectory.log_step_fit.slope; })                              \
  FIELD(log_step_r2, ("probe", "token"), "1", "R^2 of the log-step fit", kPerProbe, 0, always,                      \
        [](const TokenScalars& s) { return s.trajectory.log_step_fit.r2; })                                         \
  FIELD(inverse_sigma_slope, ("probe", "token"), "1/block", "slope of 1/s_1(J^l) against l", kPerProbe, 0, always,  \
        [](const TokenScalars& s) { return s.inverse_sigma.slope; })                                                \
  FIELD(inverse_sigma_r2, ("probe", "token"), "1", "R^2 of the inverse-sigma fit", kPerProbe, 0, always,            \
        [](const TokenScalars& s) { return s.inverse_sigma.r2; })                                                   \
  FIELD(layer_linearity, ("layer"), "1",                                                                              \
        "1 - least-squares residual of X^layer on X^(layer-1) over all probe tokens (centred, unit norm); NaN "       \
        "when probes x tokens < d + 1", kPerProbe, 0, always, nullptr)                                                \
  /* Returned only. */                                                                                              \
  FIELD(trajectories, ("probe", "token", "state", "dim"), "residual-stream units",                                  \
        "residual states x^0..x^L of the measured tokens", kNo, 0, always, nullptr)                                 \
  FIELD(jacobians, ("probe", "token", "layer", "output_dim", "input_dim"), "1",                                     \
        "J^layer_tt (MeasurementOptions::keep_jacobians)", kNo, 0, jacobians_kept, nullptr)
// clang-format on
