// The matrix-free measurement of a set of Jacobians, from products only (jacobian_products.h):
// top-K factors by the randomized estimator, and coupling matrices from J_i^T times the bases of
// the other members (docs/metrics.md section 2). No d x d matrix is formed, so the cost follows
// the number of products, not d: below the materialised path's d rows per Jacobian when K and the
// set of coupled pairs are small (docs/performance.md, the matrix-free rows).
#pragma once

#include "coupling/engine/spectrum.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace coupling {

class ProgressMeter;  // coupling/engine/progress.h

/// Top-K factors of one Jacobian given as an operator, by the randomized estimator with test
/// matrix `omega` ([d, K + p]), and the Hutchinson estimate of ||J||_F from the range finder's
/// first products: ||J Omega||_F / sqrt(K + p), unbiased in ||J||_F^2 with a relative standard
/// deviation of at most sqrt(2 / (K + p)). A Jacobian with a non-finite product gets all-NaN
/// factors and a NaN norm (as top_singular does for a materialised one).
struct MatrixFreeSpectrum {
  TopK factors;      ///< u [d, K], s [K], v [d, K]
  double frobenius;  ///< the Hutchinson estimate of ||J||_F
};
MatrixFreeSpectrum matrix_free_topk(const LinearOperator& jacobian, int64_t k, const RandomizedOptions& options,
                                    const at::Tensor& omega);

/// Member i of a coupling set as an operator.
using JacobianOf = std::function<LinearOperator(int64_t member)>;

/// The coupling matrices of a set of N Jacobians given as operators, with their factors (u, v
/// [N, d, Kmax], s [N, Kmax]), for the pairs (i, j) where `pairs` ([N, N] bool) is true; other
/// entries are NaN. Row i costs one batch of VJPs, J_i^T [U_j, V_j] for its partners j: 2 Kmax
/// products a partner. Same values and shape as coupling_matrices of the materialised set:
/// float64 [2 (ujv, vju), 2 (norm, trace), k_grid.size(), N, N]. `progress` counts rows i.
at::Tensor matrix_free_coupling(const JacobianOf& jacobian, const TopK& factors, const std::vector<int64_t>& k_grid,
                                const at::Tensor& pairs, ProgressMeter* progress = nullptr);

/// The pairs of a set whose members come from blocks `block_of` that are at most `band` blocks
/// apart ([N, N] bool); band <= 0 means every pair.
at::Tensor band_pairs(const std::vector<int64_t>& block_of, int64_t band);

}  // namespace coupling
