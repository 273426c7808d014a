#include "coupling/engine/layer_linearity.h"

#include "coupling/error.h"

#include <ATen/ATen.h>

#include <algorithm>
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
  auto x = centred(0);
  for (int64_t l = 1; l <= L; ++l) {
    const auto y = centred(l);
    // The least-squares residual of Y on X is Y minus its projection on X's column space, spanned
    // by the left singular vectors of X above the rank cut-off (LAPACK's gelsd default).
    const auto [u, s, vh] = at::linalg_svd(x, /*full_matrices=*/false);
    const double cutoff =
        s.max().item<double>() * static_cast<double>(std::max(tokens, d)) * std::numeric_limits<double>::epsilon();
    const auto basis = u.index({at::indexing::Slice(), s.gt(cutoff)});
    const double energy = y.pow(2).sum().item<double>();
    const double explained = at::matmul(basis.transpose(0, 1), y).pow(2).sum().item<double>();
    result[l - 1] = energy > 0 ? explained / energy : std::numeric_limits<double>::quiet_NaN();
    x = y;
  }
  return result;
}

}  // namespace coupling
