// Layer linearity (Razzhigaev et al., ACL 2024, "Your Transformer is Secretly Linear";
// docs/metrics.md section 4.1): how well one linear map takes the residual states entering block
// l to those leaving it, over every token of every probe.
//
// With X = X^(l-1) and Y = X^l stacked over the N probe tokens (N x d), columns centred and each
// scaled to unit Frobenius norm: linearity = 1 - min_A ||X A - Y||_F^2, in float64. It equals the
// share of Y's centred energy that the column space of X explains: 1 = exactly affine, 0 = no
// linear relation. With N < d + 1 tokens the centred X has rank below d and the fit is biased
// towards 1 (exact at N <= d), so the value is NaN there.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace coupling {

/// Layer linearity of every block from the residual states `states` [P, T, L + 1, d] (all tokens
/// of all probes): float64 [L]; NaN for every block when P T < d + 1, for a block with a
/// non-finite state (a diverged model), and for a block whose
/// output does not vary across tokens.
at::Tensor layer_linearity(const at::Tensor& states);

/// Tokens a linearity needs at width d (N >= d + 1).
inline int64_t linearity_min_tokens(int64_t d) { return d + 1; }

}  // namespace coupling
