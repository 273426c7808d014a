// Hugging Face transformers (gpt2, gpt_neox, llama/mistral, bert) rebuilt in LibTorch from their
// config.json and weights, for measurement: embeddings and blocks only (no final norm, no head),
// frozen (weights are buffers), with the residual branch f^l and its token-local evaluation that
// the coupling engine differentiates. One block implementation covers every family: the
// families differ in norms, positions, projections, MLP and where the residuals go
// (HfConfig). The exact math per family is in docs/architecture.md; tests compare every
// family with `transformers` itself (tests/python/hf_reference.py).
#pragma once

#include "coupling/engine/model_adapter.h"
#include "coupling/models/hf/config.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace coupling::hf {

class HfDirectory;

/// Where weights come from: the tensor `name` (the checkpoint's name without the model-class
/// prefix, e.g. "h.0.attn.c_attn.weight") with exactly `shape`.
using TensorSource = std::function<at::Tensor(const std::string& name, const std::vector<int64_t>& shape)>;

/// The source of a model directory's weights: names get the directory's model-class prefix
/// ("transformer.", "gpt_neox.", "model.", "bert." or none), found from the token embedding.
TensorSource directory_source(const HfDirectory& directory);
/// A source that checks every tensor a model needs against the directory's headers (name,
/// shape, dtype) without reading data, and gives shapes only (meta tensors): building an
/// HfTransformer from it checks a directory completely and cheaply.
TensorSource directory_checker(const HfDirectory& directory);

/// One block, x -> x + f(x), with its weights in a common layout (separate q/k/v, [out, in]).
class HfBlockImpl : public torch::nn::Module {
 public:
  HfBlockImpl(const HfConfig& config, const TensorSource& source, int64_t index, c10::ScalarType dtype);
  /// The residual branch f(x) for x [B, T, d] at positions 0..T-1.
  at::Tensor residual_branch(const at::Tensor& x);
  /// f(X)_{output_token} for one sequence x [T, d] whose row `input_token` is replaced by each row
  /// of `replaced` [B, d] -> [B, d]. Only the replaced token's projections (and, when it is the
  /// output token, its attention row and MLP) are recomputed; the other tokens' keys and values
  /// come from x. An input token the output cannot see (outside Mistral's window) gives zeros.
  /// The rows of `replaced` must be equal (the engine's replicas, one per Jacobian row): every
  /// product is computed once, and only the backward pass works per row.
  at::Tensor residual_branch_at_token(const at::Tensor& x, int64_t input_token, const at::Tensor& replaced,
                                      int64_t output_token);

 private:
  struct Projections {
    at::Tensor query, key, value;  ///< [..., H, hd], [..., KV, hd], [..., KV, hd]; rotary applied
  };
  /// `shared_rows`: the input is [B, d] with equal rows (the token-local replicas).
  Projections project(const at::Tensor& attention_input, const at::Tensor& positions, bool shared_rows);
  /// The projections of x's rows [first, last], which every replica's attention reads. Kept for
  /// the last x (the same tensor, unmodified, with unmodified weights): the many passes of one
  /// matrix-free Jacobian then compute them once instead of once a pass.
  const Projections& fixed_projections(const at::Tensor& x, int64_t first, int64_t last);
  /// The tensors fixed_projections reads, with their versions when it last computed them.
  std::vector<int64_t> projection_versions(const at::Tensor& x) const;
  at::Tensor norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const;
  at::Tensor mlp(const at::Tensor& x, bool shared_rows) const;
  /// The block's output branch once the attention output `a` of token(s) `x` is known.
  at::Tensor finish(const at::Tensor& x, const at::Tensor& a, bool shared_rows) const;
  /// The factor of the attention scores: 1 / sqrt(head_dim), or 1 (GPT-2's scale_attn_weights false).
  double attention_scale() const;
  /// Keys a query at `position` sees: [first, last] (causal and windowed as the config says).
  std::pair<int64_t, int64_t> visible_keys(int64_t position, int64_t tokens) const;

  HfConfig config_;
  at::Tensor norm1_weight_, norm1_bias_, norm2_weight_, norm2_bias_;
  at::Tensor q_weight_, q_bias_, k_weight_, k_bias_, v_weight_, v_bias_, o_weight_, o_bias_;
  at::Tensor up_weight_, up_bias_, gate_weight_, gate_bias_, down_weight_, down_bias_;
  at::Tensor inv_freq_;  ///< rotary frequencies [rotary_dims / 2]
  struct FixedProjections {
    at::Tensor x;  ///< held, so that no other tensor can take its place while it is cached
    int64_t first = -1, last = -1;
    std::vector<int64_t> versions;
    Projections value;
  } fixed_cache_;
};
TORCH_MODULE(HfBlock);

class HfTransformerImpl : public torch::nn::Module {
 public:
  /// Builds the whole model of `config` from `source`, in `dtype` (float32 to measure; float64 in
  /// the tests against transformers). Throws what the source throws for a missing or misshapen tensor.
  HfTransformerImpl(const HfConfig& config, const TensorSource& source, c10::ScalarType dtype = c10::kFloat);
  /// The model of `directory` streamed in float32 on `device`, for models larger than memory:
  /// embed() reads only the embedding rows of the ids it is given, and one block at a time is in
  /// memory, built when block() asks for it and released when block() asks for another. Check
  /// the directory first (directory_checker): a block's tensors are only read when it is built.
  HfTransformerImpl(std::shared_ptr<const HfDirectory> directory, c10::Device device);

  /// X^0 for token ids [B, T]: the token embedding (+ learned positions, + BERT's token type 0
  /// and embedding LayerNorm).
  at::Tensor embed(const at::Tensor& ids);
  /// X^0..X^L for token ids [B, T]; X^L is before any final norm.
  std::vector<at::Tensor> residual_states(const at::Tensor& ids);
  int64_t num_blocks() const { return config_.layers; }
  /// Block `index` (streamed: built now unless it is the resident block, which it replaces).
  HfBlock block(int64_t index);
  const HfConfig& config() const { return config_; }

 private:
  /// The embeddings besides the token embedding (positions, BERT's types and norm): small.
  void read_small_embeddings(const TensorSource& source);

  HfConfig config_;
  c10::ScalarType dtype_;
  at::Tensor token_embedding_, position_embedding_, type_embedding_, embedding_norm_weight_, embedding_norm_bias_;
  std::vector<HfBlock> blocks_;  ///< every block; streamed: the resident block only
  // Streamed models only:
  std::shared_ptr<const HfDirectory> directory_;
  TensorSource source_;               ///< the directory's tensors
  std::string token_embedding_name_;  ///< as stored (with the model-class prefix)
  c10::Device device_ = c10::kCPU;
  int64_t resident_ = -1;  ///< index of the block in blocks_
};
TORCH_MODULE(HfTransformer);

/// An HfTransformer seen by the coupling engine, with the token-local fast path.
class HfAdapter : public coupling::ModelAdapter {
 public:
  explicit HfAdapter(HfTransformer model) : model_(std::move(model)) {}
  int64_t num_blocks() const override { return model_->num_blocks(); }
  bool causal() const override { return model_->config().causal; }
  std::vector<at::Tensor> residual_states(const at::Tensor& ids) override { return model_->residual_states(ids); }
  at::Tensor residual_branch(int64_t block, const at::Tensor& x) override {
    return model_->block(block)->residual_branch(x);
  }
  bool supports_token_local() const override { return true; }
  at::Tensor residual_branch_at_token(int64_t block, const at::Tensor& x, int64_t input_token,
                                      const at::Tensor& replaced, int64_t output_token) override {
    return model_->block(block)->residual_branch_at_token(x, input_token, replaced, output_token);
  }
  /// Streamed: one block, however deep the model (HfConfig::streamed_bytes).
  int64_t tensor_bytes() const override { return model_->config().streamed_bytes(); }
  const HfTransformer& model() const { return model_; }

 private:
  HfTransformer model_;
};

}  // namespace coupling::hf
