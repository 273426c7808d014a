#include "trainer/models/transformer_block.h"

#include "coupling/error.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <cmath>
#include <limits>
#include <string>

namespace trainer {
namespace {

constexpr double kLayerNormEps = 1e-5;
constexpr double kInitStd = 0.02;

torch::nn::LayerNorm make_layer_norm(int64_t d) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(kLayerNormEps).elementwise_affine(true));
}

}  // namespace

SelfAttentionImpl::SelfAttentionImpl(const BlockConfig& config) : heads_(config.heads), causal_(config.causal) {
  if (config.d_model <= 0 || config.heads <= 0 || config.d_model % config.heads != 0) {
    throw coupling::ConfigError("d_model (" + std::to_string(config.d_model) +
                                ") must be a positive multiple of heads (" + std::to_string(config.heads) +
                                "): change --d-model or --heads");
  }
  qkv = register_module("qkv", torch::nn::Linear(config.d_model, 3 * config.d_model));
  proj = register_module("proj", torch::nn::Linear(config.d_model, config.d_model));
  attn_dropout = register_module("attn_dropout", torch::nn::Dropout(config.dropout));
  resid_dropout = register_module("resid_dropout", torch::nn::Dropout(config.dropout));
}

at::Tensor SelfAttentionImpl::forward(const at::Tensor& x) {
  const int64_t batch = x.size(0), tokens = x.size(1), d = x.size(2);
  const int64_t head_dim = d / heads_;
  // [B, T, 3d] -> three [B, H, T, hd] tensors.
  auto qkv_out = qkv->forward(x).view({batch, tokens, 3, heads_, head_dim}).permute({2, 0, 3, 1, 4});
  auto q = qkv_out[0], k = qkv_out[1], v = qkv_out[2];
  auto scores = at::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
  if (causal_) {
    auto future = at::ones({tokens, tokens}, x.options().dtype(at::kBool)).triu(1);
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
  }
  auto weights = attn_dropout->forward(at::softmax(scores, -1));
  auto mixed = at::matmul(weights, v).transpose(1, 2).reshape({batch, tokens, d});
  return resid_dropout->forward(proj->forward(mixed));
}

MlpImpl::MlpImpl(const BlockConfig& config) {
  fc = register_module("fc", torch::nn::Linear(config.d_model, 4 * config.d_model));
  proj = register_module("proj", torch::nn::Linear(4 * config.d_model, config.d_model));
  dropout = register_module("dropout", torch::nn::Dropout(config.dropout));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) { return dropout->forward(proj->forward(at::gelu(fc->forward(x)))); }

TransformerBlockImpl::TransformerBlockImpl(const BlockConfig& config) : causal_(config.causal) {
  ln1 = register_module("ln1", make_layer_norm(config.d_model));
  attn = register_module("attn", SelfAttention(config));
  ln2 = register_module("ln2", make_layer_norm(config.d_model));
  mlp = register_module("mlp", Mlp(config));
}

at::Tensor TransformerBlockImpl::residual_branch(const at::Tensor& x) {
  auto a = attn->forward(ln1->forward(x));
  auto m = mlp->forward(ln2->forward(x + a));
  return a + m;
}

at::Tensor TransformerBlockImpl::forward(const at::Tensor& x) { return x + residual_branch(x); }

at::Tensor TransformerBlockImpl::residual_branch_at_token(const at::Tensor& x, int64_t input_token,
                                                          const at::Tensor& replaced, int64_t output_token) {
  const int64_t d = x.size(1), batch = replaced.size(0);
  const int64_t heads = attn->heads(), head_dim = d / heads;
  // Keys/values visible from the output token: tokens 0..t2 (causal) or all of them.
  const int64_t visible = causal_ ? output_token + 1 : x.size(0);
  if (input_token < 0 || input_token >= visible) {
    throw coupling::ConfigError("token " + std::to_string(input_token) + " cannot influence token " +
                                std::to_string(output_token) + " in this block (causal zero or out of range)");
  }
  const auto fixed_qkv = attn->qkv->forward(ln1->forward(x.narrow(0, 0, visible)));  // [n, 3d], constant
  const auto varied_qkv = attn->qkv->forward(ln1->forward(replaced));                // [B, 3d]
  auto split_heads = [&](const at::Tensor& t, int64_t part) {                        // -> [..., H, hd]
    auto sizes = t.sizes().vec();
    sizes.back() = heads;
    sizes.push_back(head_dim);
    return t.narrow(-1, part * d, d).reshape(sizes);
  };
  // Scores and mixing against the fixed keys/values with one GEMM per head, then the input
  // token's column swapped for its varied key/value: no [B, n, d] tensor is ever built.
  const auto fixed_keys = split_heads(fixed_qkv, 1), fixed_values = split_heads(fixed_qkv, 2);      // [n, H, hd]
  const auto varied_keys = split_heads(varied_qkv, 1), varied_values = split_heads(varied_qkv, 2);  // [B, H, hd]
  const auto query = input_token == output_token
                         ? split_heads(varied_qkv, 0)  // [B, H, hd]
                         : split_heads(fixed_qkv.narrow(0, output_token, 1), 0).expand({batch, heads, head_dim});
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const auto fixed_scores = at::einsum("bhe,nhe->bhn", {query, fixed_keys}) * scale;  // [B, H, n]
  const auto varied_score = (query * varied_keys).sum(-1, /*keepdim=*/true) * scale;  // [B, H, 1]
  const auto scores = at::cat({fixed_scores.narrow(2, 0, input_token), varied_score,
                               fixed_scores.narrow(2, input_token + 1, visible - input_token - 1)},
                              2);
  const auto weights = at::softmax(scores, -1);
  const auto weight_at_input = weights.narrow(2, input_token, 1);  // [B, H, 1]
  const auto mixed = (at::einsum("bhn,nhe->bhe", {weights, fixed_values}) +
                      weight_at_input * (varied_values - fixed_values.select(0, input_token)))
                         .reshape({batch, d});
  const auto a = attn->proj->forward(mixed);
  const auto x_out = input_token == output_token ? replaced : x.select(0, output_token).unsqueeze(0).expand({batch, d});
  return a + mlp->forward(ln2->forward(x_out + a));
}

void init_block_gpt2(TransformerBlockImpl& block, int64_t total_layers) {
  at::NoGradGuard no_grad;
  const double proj_std = kInitStd / std::sqrt(2.0 * static_cast<double>(total_layers));
  for (auto* linear : {&block.attn->qkv, &block.mlp->fc}) {
    torch::nn::init::normal_((*linear)->weight, 0.0, kInitStd);
    torch::nn::init::zeros_((*linear)->bias);
  }
  for (auto* linear : {&block.attn->proj, &block.mlp->proj}) {
    torch::nn::init::normal_((*linear)->weight, 0.0, proj_std);
    torch::nn::init::zeros_((*linear)->bias);
  }
}

std::vector<at::Tensor> residual_stream(const at::Tensor& x0, const torch::nn::ModuleList& blocks) {
  std::vector<at::Tensor> states{x0};
  states.reserve(blocks->size() + 1);
  for (size_t l = 0; l < blocks->size(); ++l)
    states.push_back(blocks->ptr<TransformerBlockImpl>(l)->forward(states.back()));
  return states;
}

}  // namespace trainer
