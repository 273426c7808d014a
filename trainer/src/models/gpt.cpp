#include "trainer/models/gpt.h"

#include "coupling/error.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <string>

namespace trainer {

GptImpl::GptImpl(const GptConfig& config) : config_(config) {
  config_.validate();
  wte = register_module("wte", torch::nn::Embedding(config.vocab, config.d_model));
  wpe = register_module("wpe", torch::nn::Embedding(config.context, config.d_model));
  emb_dropout = register_module("emb_dropout", torch::nn::Dropout(config.dropout));
  blocks = register_module("blocks", torch::nn::ModuleList());
  const BlockConfig block_config{config.d_model, config.heads, config.dropout, /*causal=*/true};
  for (int64_t l = 0; l < config.layers; ++l) {
    TransformerBlock block(block_config);
    init_block_gpt2(*block, config.layers);
    blocks->push_back(block);
  }
  ln_f = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model}).eps(1e-5)));
  at::NoGradGuard no_grad;
  torch::nn::init::normal_(wte->weight, 0.0, 0.02);
  torch::nn::init::normal_(wpe->weight, 0.0, 0.02);
}

TransformerBlock GptImpl::block(int64_t index) const {
  return TransformerBlock(blocks->ptr<TransformerBlockImpl>(static_cast<size_t>(index)));
}

at::Tensor GptImpl::embed(const at::Tensor& idx) {
  const int64_t tokens = idx.size(1);
  if (tokens > config_.context) {
    throw coupling::ConfigError("input has " + std::to_string(tokens) + " tokens but the model's context is " +
                                std::to_string(config_.context) + ": shorten the input or raise --context");
  }
  auto positions = at::arange(tokens, idx.options().dtype(at::kLong));
  return emb_dropout->forward(wte->forward(idx) + wpe->forward(positions));
}

at::Tensor GptImpl::head(const at::Tensor& x) { return at::matmul(ln_f->forward(x), wte->weight.t()); }

at::Tensor GptImpl::forward(const at::Tensor& idx) { return head(residual_states(idx).back()); }

std::vector<at::Tensor> GptImpl::residual_states(const at::Tensor& idx) { return residual_stream(embed(idx), blocks); }

at::Tensor next_token_loss(const at::Tensor& logits, const at::Tensor& targets) {
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

}  // namespace trainer
