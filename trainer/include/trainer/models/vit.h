// The bundled Vision Transformer: images -> class logits.
//
// An image [C, H, W] is cut into non-overlapping p x p patches (row-major); each flattened patch
// is embedded linearly, a learned CLS token is put in front, and a learned positional embedding
// is added: X^0 = [cls; patches W_p^T + b_p] + pos (T = 1 + (H/p)^2 tokens). The blocks are the
// GPT's pre-LN TransformerBlock with NON-causal attention, X^l = block_l(X^{l-1}); the head is a
// linear map of LN_f(X^L) at the CLS token. Exact math and parameter names: docs/architecture.md.
#pragma once

#include "trainer/models/transformer_block.h"
#include "trainer/models/vit_config.h"

#include <torch/nn/modules/container/modulelist.h>

#include <cstdint>
#include <vector>

namespace trainer {

class VitImpl : public torch::nn::Module {
 public:
  explicit VitImpl(const VitConfig& config);

  /// Images [B, C, H, W] (float, normalised) -> logits [B, classes].
  at::Tensor forward(const at::Tensor& images);
  /// Images -> X^0 [B, T, d] (CLS + patch embeddings + positions; dropout in train mode).
  at::Tensor embed(const at::Tensor& images);
  /// Final residual state X^L -> logits (final LayerNorm, head on the CLS token).
  at::Tensor head(const at::Tensor& x);
  /// Residual states X^0..X^L: L + 1 tensors of shape [B, T, d].
  std::vector<at::Tensor> residual_states(const at::Tensor& images);

  int64_t num_blocks() const { return static_cast<int64_t>(blocks->size()); }
  TransformerBlock block(int64_t index) const;
  const VitConfig& config() const { return config_; }

  torch::nn::Linear patch_embed{nullptr};
  at::Tensor cls_token;  ///< [1, 1, d]
  at::Tensor pos_embed;  ///< [1, T, d]
  torch::nn::Dropout emb_dropout{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
  torch::nn::Linear classifier{nullptr};

 private:
  VitConfig config_;
};
TORCH_MODULE(Vit);

/// Images [B, C, H, W] -> patches [B, (H/p)(W/p), C p p], row-major over the patch grid, each
/// patch flattened as (channel, row, column).
at::Tensor patchify(const at::Tensor& images, int64_t patch);

}  // namespace trainer
