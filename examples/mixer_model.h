// The "user's own model" of the examples: a small causal mixer. Each block's residual branch
// mixes tokens by a running mean (token t sees tokens <= t) and applies an MLP. Nothing in the
// model is libcoupling-specific; mixer_adapter() is the few lines of glue a user writes.
#pragma once

#include "coupling/engine/model_adapter.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <memory>
#include <vector>

// --- the user's model (nothing libcoupling-specific) ---------------------------------------
struct MixerBlockImpl : torch::nn::Module {
  explicit MixerBlockImpl(int64_t d)
      : norm(register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})))),
        up(register_module("up", torch::nn::Linear(d, 2 * d))),
        down(register_module("down", torch::nn::Linear(2 * d, d))) {}
  at::Tensor branch(const at::Tensor& x) {
    const auto h = norm(x);
    const auto counts = at::arange(1, x.size(1) + 1, x.options()).view({1, -1, 1});
    return down(at::gelu(up(h.cumsum(1) / counts)));
  }
  at::Tensor forward(const at::Tensor& x) { return x + branch(x); }
  torch::nn::LayerNorm norm;
  torch::nn::Linear up, down;
};
TORCH_MODULE(MixerBlock);

struct MixerModelImpl : torch::nn::Module {
  MixerModelImpl(int64_t vocab, int64_t d, int64_t layers)
      : embedding(register_module("embedding", torch::nn::Embedding(vocab, d))),
        blocks(register_module("blocks", torch::nn::ModuleList())) {
    for (int64_t l = 0; l < layers; ++l) blocks->push_back(MixerBlock(d));
    at::NoGradGuard no_grad;
    embedding->weight.normal_(0.0, 0.1);  // small logits at init through the tied head
  }
  MixerBlock block(int64_t l) { return MixerBlock(blocks->ptr<MixerBlockImpl>(static_cast<size_t>(l))); }
  torch::nn::Embedding embedding;
  torch::nn::ModuleList blocks;
};
TORCH_MODULE(MixerModel);

/// The adapter: residual states X^0..X^L, the residual branch f^l (no skip), eval mode while measuring.
inline std::shared_ptr<coupling::LambdaAdapter> mixer_adapter(MixerModel model) {
  const auto layers = static_cast<int64_t>(model->blocks->size());
  return std::make_shared<coupling::LambdaAdapter>(
      layers, /*causal=*/true,
      [model, layers](const at::Tensor& ids) mutable {
        std::vector<at::Tensor> states{model->embedding(ids)};
        for (int64_t l = 0; l < layers; ++l) states.push_back(model->block(l)->forward(states.back()));
        return states;
      },
      [model](int64_t l, const at::Tensor& x) mutable { return model->block(l)->branch(x); },
      [model]() mutable { model->eval(); }, [model]() mutable { model->train(); });
}

/// Logits over the vocabulary (a tied head, as in the bundled GPT).
inline at::Tensor mixer_logits(MixerModel& model, const at::Tensor& ids) {
  auto x = model->embedding(ids);
  for (size_t l = 0; l < model->blocks->size(); ++l) x = model->block(static_cast<int64_t>(l))->forward(x);
  return at::matmul(x, model->embedding->weight.t());
}
