// One coupling measurement: a model (through its ModelAdapter) and fixed probe inputs in, every
// quantity of docs/metrics.md sections 1-4 out. No I/O: the callback/HDF5 log and the post-hoc tools
// consume a Measurement. docs/metrics.md documents each field, its formula and conventions.
#pragma once

#include "coupling/coupling_metric.h"
#include "coupling/jacobian.h"
#include "coupling/model_adapter.h"
#include "coupling/spectrum.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace coupling {

class Communicator;

/// A Jacobian J_{t1 t2}: input token t1, output token t2 (negative = counted from the end).
struct TokenPair {
  int64_t input = -1;
  int64_t output = -1;
};

/// Which token Jacobians to measure.
struct TokenSelection {
  enum class Mode { kLast, kList, kAll };
  Mode mode = Mode::kLast;           ///< diagonal tokens J_{tt}: the last, a list, or every token
  std::vector<int64_t> tokens;       ///< for kList; negative = from the end (-1 = last)
  std::vector<TokenPair> context_pairs;  ///< (t1, t2) pairs for context coupling (may be empty)
};

/// kAuto: randomized when K_max is well below d (4 K_max <= d), where it is several times faster
/// than a full SVD at the accuracy measured in docs/performance.md; exact otherwise.
enum class SpectrumMethod { kAuto, kExact, kRandomized };

struct MeasurementOptions {
  std::vector<int64_t> k_grid{10, 30, 50};  ///< K values, capped at d (duplicates removed)
  std::vector<double> k_fractions;          ///< more K values as fractions of d (rounded, >= 1)
  TokenSelection tokens;
  SpectrumMethod spectrum = SpectrumMethod::kAuto;
  SvdPrecision precision = SvdPrecision::kFloat32;  ///< exact SVD precision
  RandomizedOptions randomized;
  JacobianOptions jacobian;
  int64_t max_set_size = 256;  ///< skip blocks x tokens coupling when L * tokens exceeds this
  bool keep_jacobians = false; ///< keep the diagonal-token Jacobians in the result
};

struct MeasurementTimings {
  double forward = 0, jacobians = 0, spectra = 0, coupling = 0, trajectories = 0, total = 0;  ///< seconds
};

/// Index order of the coupling-variant axes: [orientation (ujv, vju), normalisation (norm, trace), k].
/// P = probes, n = diagonal tokens, L = blocks, nK = k_grid.size(), np = context pairs.
struct Measurement {
  int64_t probes = 0, blocks = 0, sequence_length = 0, d_model = 0;
  std::vector<int64_t> tokens;             ///< resolved diagonal tokens
  std::vector<TokenPair> context_pairs;    ///< resolved context pairs
  std::vector<int64_t> k_grid;             ///< resolved K values (ascending)

  at::Tensor trajectories;      ///< [P, n, L+1, d] residual states x^0..x^L of the measured tokens
  at::Tensor singular_values;   ///< [P, n, L, Kmax] top singular values of J^l_{tt}
  at::Tensor jacobians;         ///< [P, n, L, d, d] (only with keep_jacobians)

  at::Tensor depth_coupling;        ///< [P, n, 2, 2, nK, L, L]: J^i_{tt} vs J^j_{tt}
  at::Tensor depth_mean_offdiag;    ///< [P, n, 2, 2, nK]
  at::Tensor depth_mean_adjacent;   ///< [P, n, 2, 2, nK] over |i - j| = 1
  at::Tensor token_coupling;        ///< [P, L, 2, 2, nK, n, n]: J^l_{tt} vs J^l_{t't'} (n >= 2)
  at::Tensor token_mean_offdiag;    ///< [P, L, 2, 2, nK]
  at::Tensor block_token_coupling;  ///< [P, 2, 2, nK, L*n, L*n], index l*n + token (n >= 2, L*n <= max_set_size)
  at::Tensor block_token_mean_offdiag;  ///< [P, 2, 2, nK]
  at::Tensor context_coupling;      ///< [P, 2, 2, nK, L*np, L*np], index l*np + pair (pairs given)
  at::Tensor context_same_input;    ///< [P, 2, 2, nK] mean over entries sharing t1
  at::Tensor context_same_output;   ///< [P, 2, 2, nK] mean over entries sharing t2

  // Trajectory metrics per probe and measured token: [P, n] (norms and steps: [P, n, L+1], [P, n, L]).
  at::Tensor residual_norms, step_lengths;
  at::Tensor line_shape_score, norm_growth_rate, norm_growth_factor, norm_growth_r2;
  at::Tensor step_cv, step_ratio_cv, log_step_rate, log_step_r2;
  at::Tensor inverse_sigma_slope, inverse_sigma_r2;  ///< fit of 1/s_1(J^l) against l = 1..L

  MeasurementTimings timings;
};

/// Measures `adapter`'s model on `probe_inputs` (whatever residual_states takes, batch first).
/// The model's parameters and their .grad are left untouched. Throws coupling::ConfigError on
/// inconsistent options or a misbehaving adapter.
Measurement measure(ModelAdapter& adapter, const at::Tensor& probe_inputs, const MeasurementOptions& options = {});

/// The same measurement shared across the ranks of `communicator` (every rank calls it with the
/// same model and probes): each rank measures a contiguous slice of the probes (Jacobians,
/// spectra, coupling matrices, trajectory metrics), and one all-gather of the per-probe results
/// gives every rank the single-process result. The randomized spectra are seeded per probe, so
/// the numbers do not depend on the split. The speed-up needs at least as many probes as ranks.
Measurement measure(ModelAdapter& adapter, const at::Tensor& probe_inputs, const MeasurementOptions& options,
                    Communicator& communicator);

/// One-line summary for progress logs: "depth m_K=10 0.9719 (ujv/norm), LSS 2.003, norm growth
/// x1.037/block" (smallest K; means over probes and tokens).
std::string headline(const Measurement& m);

/// Mean over probes and tokens of depth_mean_offdiag for one variant: [nK] float64.
at::Tensor depth_coupling_summary(const Measurement& m, Orientation orientation = Orientation::kUJV,
                                  Normalisation normalisation = Normalisation::kNorm);

}  // namespace coupling
