// The pre-LayerNorm transformer block shared by the bundled GPT (causal) and ViT (non-causal).
//
// A block maps the residual stream X (shape [B, T, d]) to X + f(X). The residual branch f
// (attention branch plus MLP branch, including their LayerNorms, excluding the skip) is exposed
// on its own because the coupling engine differentiates exactly f (docs/metrics.md section 1):
//     a = Attn(LN1(X)),  m = MLP(LN2(X + a)),  f(X) = a + m,  block(X) = X + f(X).
// The exact math is in docs/architecture.md.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cstdint>
#include <vector>

namespace trainer {

/// Shape and regularisation of one block.
struct BlockConfig {
  int64_t d_model = 128;
  int64_t heads = 4;
  double dropout = 0.0;
  bool causal = true;
};

/// Multi-head self-attention with a fused QKV projection; causal masking is optional.
class SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit SelfAttentionImpl(const BlockConfig& config);
  /// [B, T, d] -> [B, T, d]: the attention output after the output projection.
  at::Tensor forward(const at::Tensor& x);
  int64_t heads() const { return heads_; }

  torch::nn::Linear qkv{nullptr};
  torch::nn::Linear proj{nullptr};
  torch::nn::Dropout attn_dropout{nullptr};
  torch::nn::Dropout resid_dropout{nullptr};

 private:
  int64_t heads_;
  bool causal_;
};
TORCH_MODULE(SelfAttention);

/// Position-wise MLP d -> 4d -> d with the exact (erf) GELU.
class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const BlockConfig& config);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Linear fc{nullptr};
  torch::nn::Linear proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(Mlp);

/// x -> x + f(x) with f = attention branch + MLP branch (pre-LN).
class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(const BlockConfig& config);
  /// The full block: x + residual_branch(x).
  at::Tensor forward(const at::Tensor& x);
  /// The residual branch f(x) alone (what the coupling engine differentiates).
  at::Tensor residual_branch(const at::Tensor& x);
  /// Token-local evaluation for the coupling engine's fast Jacobians: f(X)_{output_token} for one
  /// sequence `x` ([T, d]) whose row `input_token` is replaced by each row of `replaced` ([B, d]);
  /// returns [B, d]. Only that token's LN/QKV (and, when it is the output token, its attention
  /// and MLP) are recomputed; every other token's keys and values come from `x`.
  at::Tensor residual_branch_at_token(const at::Tensor& x, int64_t input_token, const at::Tensor& replaced,
                                      int64_t output_token);
  bool causal() const { return causal_; }

  torch::nn::LayerNorm ln1{nullptr};
  SelfAttention attn{nullptr};
  torch::nn::LayerNorm ln2{nullptr};
  Mlp mlp{nullptr};

 private:
  bool causal_;
};
TORCH_MODULE(TransformerBlock);

/// The residual stream X^0..X^L of a stack of TransformerBlocks: x0, then each block applied in
/// turn (L + 1 tensors). The bundled models' forward passes and residual_states both use it.
std::vector<at::Tensor> residual_stream(const at::Tensor& x0, const torch::nn::ModuleList& blocks);

/// GPT-2 style initialisation of a block: N(0, 0.02) weights, zero biases, and the two output
/// projections scaled by 1/sqrt(2 * total_layers) so the residual stream does not grow with depth.
void init_block_gpt2(TransformerBlockImpl& block, int64_t total_layers);

}  // namespace trainer
