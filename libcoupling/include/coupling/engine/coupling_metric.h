// The coupling metric m_K between Jacobians (docs/metrics.md section 3).
//
// For J1 (diagonalised) and J2 (supplying the basis), with J2's top-K singular vectors:
//   ujv:  M = U_{2,K}^T J1 V_{2,K}        vju:  M = V_{2,K}^T J1 U_{2,K}
//   m_K = || |M| - S_{1,K} ||_F / ||S_{1,K}||_F   ("norm")   or   / trace(S_{1,K})   ("trace")
// |M| is element-wise; S_{1,K} = diag of J1's top-K singular values. LOWER m = MORE coupled;
// m = 0 when J2's singular vectors diagonalise J1 with J1's own singular values.
// Coupling matrices hold m for every ordered pair (row i = J_i diagonalised, column j = basis
// of J_j) of a set of Jacobians, computed as a few large matrix products.
#pragma once

#include "coupling/engine/spectrum.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace coupling {

class ProgressMeter;  // coupling/engine/progress.h

enum class Orientation : int64_t { kUJV = 0, kVJU = 1 };
enum class Normalisation : int64_t { kNorm = 0, kTrace = 1 };

/// m_K(J1, J2) for one pair. j1 [d, d]; s1 = J1's singular values (at least K); f2 = J2's top-K
/// factors (at least K columns). Straightforward reference implementation (double precision).
double coupling_pair(const at::Tensor& j1, const at::Tensor& s1, const TopK& f2, int64_t k, Orientation orientation,
                     Normalisation normalisation);

/// Coupling matrices of the set of N Jacobians in `jacobians` ([..., N, d, d]) with their top-K
/// factors (`factors` with [..., N, d, Kmax], s [..., N, Kmax]), for every K in `k_grid`
/// (each <= Kmax). Returns float64 [..., 2 (ujv, vju), 2 (norm, trace), k_grid.size(), N, N].
/// `progress`, if given, counts the 2 N^2 (orientation, i, j) entries as they are done.
at::Tensor coupling_matrices(const at::Tensor& jacobians, const TopK& factors, const std::vector<int64_t>& k_grid,
                             ProgressMeter* progress = nullptr);

/// Jacobians J_i, i in [first, first + count), of batch elements [batch_first, batch_first +
/// batch_count) of a coupling set (the batch flattened from the factors' leading shape):
/// [batch_count, count, d, d].
using CouplingRows = std::function<at::Tensor(int64_t batch_first, int64_t batch_count, int64_t first, int64_t count)>;
/// coupling_matrices of a set of N Jacobians that are fetched a few at a time (each is read once
/// per orientation, at most about 128 MiB of them at once), so the set need not be in memory;
/// the factors give N, d and the batch.
at::Tensor coupling_matrices(const CouplingRows& rows, const TopK& factors, const std::vector<int64_t>& k_grid,
                             ProgressMeter* progress = nullptr);

/// m_K from projections: `projected` [..., Nj, Kmax, Kmax] holds M = U_j^T J_i V_j (or V_j^T J_i
/// U_j) for one diagonalised J_i against the bases of Nj Jacobians, `s` [..., Kmax] J_i's singular
/// values. Returns float64 [..., 2 (norm, trace), k_grid.size(), Nj]. Both the materialised and the
/// matrix-free coupling (matrix_free.h) end here.
at::Tensor coupling_values(const at::Tensor& projected, const at::Tensor& s, const std::vector<int64_t>& k_grid);

/// Mean of m[..., i, j] over ordered pairs i != j (the model-level summary). [..., N, N] -> [...].
at::Tensor mean_off_diagonal(const at::Tensor& m);
/// The pairs |i - j| == 1 of a set of N (depth-local coupling): [N, N] bool.
at::Tensor adjacent_pairs(int64_t n);
/// Mean over |i - j| == 1 (depth-local coupling). [..., N, N] -> [...]; NaN when N < 2.
at::Tensor mean_adjacent(const at::Tensor& m);
/// Mean over ordered pairs i != j with mask[i][j] true; mask [N, N] bool. NaN where no pair.
at::Tensor mean_over_pairs(const at::Tensor& m, const at::Tensor& mask);

}  // namespace coupling
