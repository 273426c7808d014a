// Top-K singular structure J ~ U_K S_K V_K^T of (batches of) Jacobians (docs/metrics.md section 2).
//
// Two estimators that must agree: the exact one (full SVD of the materialised J, fp32 or fp64)
// and the randomized one of Halko, Martinsson & Tropp (2011, Alg. 4.4 + 5.1): a Gaussian test
// matrix with K + p columns, q power iterations re-orthonormalised by QR after every product,
// then an SVD of the small projected matrix, so u_k and v_k come from ONE decomposition and are
// paired consistently. The randomized estimator only needs products J X and J^T Y, so it works
// matrix-free through LinearOperator.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace coupling {

/// Leading singular triplets, singular values descending. Shapes for a batch [..., m, n] of
/// matrices: u [..., m, K], s [..., K], v [..., n, K] (columns are the singular vectors).
struct TopK {
  at::Tensor u;
  at::Tensor s;
  at::Tensor v;
};

enum class SvdPrecision { kFloat32, kFloat64 };

/// Exact top-K of `matrices` ([..., m, n]) from a full SVD computed in `precision`; results are
/// returned in float32. Throws coupling::ConfigError when k exceeds min(m, n).
TopK exact_topk(const at::Tensor& matrices, int64_t k, SvdPrecision precision = SvdPrecision::kFloat32);

/// A batch of linear maps given only through products: multiply(X) = J X for X [..., cols, r]
/// and multiply_transpose(Y) = J^T Y for Y [..., rows, r]. `batch` is the leading shape.
struct LinearOperator {
  std::vector<int64_t> batch;
  int64_t rows = 0;
  int64_t cols = 0;
  c10::Device device = c10::Device(c10::kCPU);  ///< where multiply() wants its argument
  std::function<at::Tensor(const at::Tensor&)> multiply;
  std::function<at::Tensor(const at::Tensor&)> multiply_transpose;
};

/// The operator of materialised matrices [..., m, n].
LinearOperator dense_operator(const at::Tensor& matrices);

/// Defaults p = 20, q = 4: on 96 trained-size Jacobians (d = 768, K = 50) 4.6x faster than a full
/// SVD with max |delta m_K| 7e-3 (docs/performance.md, case 5).
struct RandomizedOptions {
  int64_t oversample = 20;       ///< p: extra test vectors beyond K
  int64_t power_iterations = 4;  ///< q: passes through (J J^T)
  uint64_t seed = 0;             ///< test-matrix seed (a local generator: global RNG untouched)
};

/// The Gaussian test matrix of the randomized top-k of a batch `batch` of rows x cols maps:
/// [...batch, cols, min(k + p, rows, cols)], drawn on the CPU from options.seed (so every device
/// gets the same one). Slices of it serve the batch's matrices one at a time with the numbers
/// the whole batch would use.
at::Tensor test_matrix(const std::vector<int64_t>& batch, int64_t rows, int64_t cols, int64_t k,
                       const RandomizedOptions& options);
/// Randomized top-K (float32), with `omega` as the test matrix (default: test_matrix of the
/// operator's shape). Throws coupling::ConfigError when k exceeds min(rows, cols).
TopK randomized_topk(const LinearOperator& op, int64_t k, const RandomizedOptions& options = {},
                     const at::Tensor& omega = {});

/// Which estimator a measurement uses. kAuto: randomized when K is well below d (4 K <= d),
/// where it is several times faster than a full SVD at the accuracy measured in
/// docs/performance.md; exact otherwise.
enum class SpectrumMethod { kAuto, kExact, kRandomized };

/// Whether `method` means the randomized estimator for top-k of d x d matrices.
bool uses_randomized(SpectrumMethod method, int64_t k, int64_t d);

/// Top-k factors of a batch of square Jacobians [..., d, d] by `method`'s estimator. A Jacobian
/// with a non-finite entry (a diverging model) gets all-NaN factors, so its coupling entries
/// and summaries read NaN and the others are exact. `omega`: the randomized estimator's test
/// matrix (default: drawn from randomized.seed for this batch).
TopK top_singular(const at::Tensor& jacobians, int64_t k, SpectrumMethod method, SvdPrecision precision,
                  const RandomizedOptions& randomized, const at::Tensor& omega = {});

}  // namespace coupling
