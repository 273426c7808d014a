#include "coupling/engine/layer_linearity.h"

#include "coupling/error.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace coupling {

at::Tensor layer_linearity(const at::Tensor& states) {
  if (states.dim() != 4) throw Error("layer_linearity takes residual states [P, T, L + 1, d]");
  const int64_t L = states.size(2) - 1, d = states.size(3);
  const int64_t tokens = states.size(0) * states.size(1);
  auto result = at::full({L}, std::numeric_limits<double>::quiet_NaN(), at::kDouble);
  if (tokens < linearity_min_tokens(d)) return result;
  const auto centred = [&](int64_t state) {
    const auto x = states.select(2, state).reshape({tokens, d}).to(at::kCPU, at::kDouble);
    return x - x.mean(0, /*keepdim=*/true);
  };
  // The explained share tr(Y^T P_X Y) / ||Y||^2 from the Gram matrix X^T X = V diag(lambda) V^T:
  // sum_i ||(V^T X^T Y)_i||^2 / lambda_i (cheap: N d^2 + d^3). Its error grows as cond(X)^2 eps, so
  // past cond(X) = 1e4 (1e-8 in that error) the projection comes from an SVD of X instead,
  // spanned by its singular vectors above the rank cut-off (LAPACK's gelsd default).
  constexpr double kGramConditionLimit = 1e8;  // cond(X)^2
  auto x = centred(0);
  auto gram = at::matmul(x.transpose(0, 1), x);
  for (int64_t l = 1; l <= L; ++l) {
    const auto y = centred(l);
    const double energy = y.pow(2).sum().item<double>();
    if (!std::isfinite(energy) || !at::isfinite(gram).all().item<bool>()) {  // a diverged model: NaN, not a throw
      x = y;
      gram = at::matmul(y.transpose(0, 1), y);
      continue;
    }
    const auto [lambda, vectors] = at::linalg_eigh(gram);
    double explained = 0;
    if (lambda.min().item<double>() * kGramConditionLimit > lambda.max().item<double>()) {
      explained = (at::matmul(vectors.transpose(0, 1), at::matmul(x.transpose(0, 1), y)).pow(2).sum(1) / lambda)
                      .sum()
                      .item<double>();
    } else {
      const auto [u, s, vh] = at::linalg_svd(x, /*full_matrices=*/false);
      const double cutoff =
          s.max().item<double>() * static_cast<double>(std::max(tokens, d)) * std::numeric_limits<double>::epsilon();
      const auto basis = u.index({at::indexing::Slice(), s.gt(cutoff)});
      explained = at::matmul(basis.transpose(0, 1), y).pow(2).sum().item<double>();
    }
    result[l - 1] = energy > 0 ? explained / energy : std::numeric_limits<double>::quiet_NaN();
    x = y;
    gram = at::matmul(y.transpose(0, 1), y);
  }
  return result;
}

}  // namespace coupling
