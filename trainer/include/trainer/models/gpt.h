// The bundled GPT-2 style decoder: byte tokens -> logits over the next byte.
//
// X^0 = wte[idx] + wpe[0..T-1]; X^l = block_l(X^{l-1}) for l = 1..L; logits = LN_f(X^L) wte^T
// (the LM head is tied to the token embedding). The model exposes each stage separately
// (embed, blocks, head) so the coupling engine can read the residual states X^0..X^L and
// differentiate each block's residual branch. Exact math and parameter names:
// docs/architecture.md.
#pragma once

#include "trainer/models/gpt_config.h"
#include "trainer/models/transformer_block.h"

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>

#include <cstdint>
#include <vector>

namespace trainer {

class GptImpl : public torch::nn::Module {
 public:
  explicit GptImpl(const GptConfig& config);

  /// Token ids [B, T] (int64, T <= context) -> logits [B, T, vocab].
  at::Tensor forward(const at::Tensor& idx);
  /// Token ids [B, T] -> X^0 = token embedding + positional embedding (dropout applied in train mode).
  at::Tensor embed(const at::Tensor& idx);
  /// Final residual state X^L [B, T, d] -> logits [B, T, vocab] (final LayerNorm + tied head).
  at::Tensor head(const at::Tensor& x);
  /// Residual states X^0..X^L for token ids [B, T]: L + 1 tensors of shape [B, T, d].
  std::vector<at::Tensor> residual_states(const at::Tensor& idx);

  int64_t num_blocks() const { return static_cast<int64_t>(blocks->size()); }
  TransformerBlock block(int64_t index) const;
  const GptConfig& config() const { return config_; }

  torch::nn::Embedding wte{nullptr};
  torch::nn::Embedding wpe{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
  torch::nn::Dropout emb_dropout{nullptr};

 private:
  GptConfig config_;
};
TORCH_MODULE(Gpt);

/// Mean cross-entropy (nats per token) of logits [B, T, V] against targets [B, T].
at::Tensor next_token_loss(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace trainer
