// The uncoupled null of m_K (docs/metrics.md section 3.1): what m_K(J, basis) would be if the
// basis were unrelated to J, i.e. J against Haar-random orthonormal U, V of the same size.
//
// The null depends only on J's singular values: for Haar U, V the projection U^T J V has the law
// of U^T diag(sigma) V. A measurement keeps J's top Kmax values and ||J||_F, so the rest of the
// spectrum is taken flat with the energy left (exact for E||M||_F^2 = K^2 ||J||_F^2 / d^2, which
// needs only ||J||_F; the flat tail touches only the diagonal term). Its mean and standard
// deviation come from a seeded Monte Carlo over a fixed set of Haar pairs, the same for every
// Jacobian, measurement and rank (common random numbers: a change of the null between steps is
// a change of the spectrum, never of the draws). Both orientations share one null: for
// independent Haar U and V, U^T J V and V^T J U have the same law.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace coupling {

struct NullOptions {
  int64_t draws = 64;          ///< Haar pairs (U, V); the MC error of the mean is sd / sqrt(draws)
  uint64_t seed = 2407078103;  ///< fixed: the draws are part of the definition
};

/// Mean and standard deviation of m_K under the null, float64 [..., 2 (norm, trace), nK].
struct CouplingNull {
  at::Tensor mean, sd;
};

/// The null of m_K for Jacobians of width d with top singular values `singular_values`
/// ([..., Kmax], descending) and Frobenius norms `frobenius` ([...]), for every K of `k_grid`
/// (each <= Kmax).
CouplingNull coupling_null(const at::Tensor& singular_values, const at::Tensor& frobenius, int64_t d,
                           const std::vector<int64_t>& k_grid, const NullOptions& options = {});

/// The null of a mean of m over the ordered pairs (i, j), i != j, of `mask` ([N, N] bool), from
/// the null of each member i (mean, sd: [..., N]): pairs are independent under the null (each
/// basis an independent Haar draw), so mean = sum_i r_i mean_i / R and sd = sqrt(sum_i r_i
/// sd_i^2) / R, with r_i the pairs of row i and R their total. NaN where the mask has no pair.
CouplingNull null_over_pairs(const CouplingNull& members, const at::Tensor& mask);

}  // namespace coupling
