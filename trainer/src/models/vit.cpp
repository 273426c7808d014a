#include "trainer/models/vit.h"

#include "coupling/error.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include <string>

namespace trainer {

at::Tensor patchify(const at::Tensor& images, int64_t patch) {
  const int64_t b = images.size(0), c = images.size(1), h = images.size(2) / patch, w = images.size(3) / patch;
  return images.reshape({b, c, h, patch, w, patch}).permute({0, 2, 4, 1, 3, 5}).reshape({b, h * w, c * patch * patch});
}

VitImpl::VitImpl(const VitConfig& config) : config_(config) {
  config_.validate();
  const int64_t d = config.d_model;
  patch_embed = register_module("patch_embed", torch::nn::Linear(config.channels * config.patch * config.patch, d));
  cls_token = register_parameter("cls_token", at::zeros({1, 1, d}));
  pos_embed = register_parameter("pos_embed", at::zeros({1, config.tokens(), d}));
  emb_dropout = register_module("emb_dropout", torch::nn::Dropout(config.dropout));
  blocks = register_module("blocks", torch::nn::ModuleList());
  const BlockConfig block_config{d, config.heads, config.dropout, /*causal=*/false};
  for (int64_t l = 0; l < config.layers; ++l) {
    TransformerBlock block(block_config);
    init_block_gpt2(*block, config.layers);
    blocks->push_back(block);
  }
  ln_f = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-5)));
  classifier = register_module("classifier", torch::nn::Linear(d, config.classes));
  at::NoGradGuard no_grad;
  for (auto* weight : {&patch_embed->weight, &classifier->weight, &cls_token, &pos_embed}) {
    torch::nn::init::normal_(*weight, 0.0, 0.02);
  }
  torch::nn::init::zeros_(patch_embed->bias);
  torch::nn::init::zeros_(classifier->bias);
}

TransformerBlock VitImpl::block(int64_t index) const {
  return TransformerBlock(blocks->ptr<TransformerBlockImpl>(static_cast<size_t>(index)));
}

at::Tensor VitImpl::embed(const at::Tensor& images) {
  const auto& c = config_;
  if (images.dim() != 4 || images.size(1) != c.channels || images.size(2) != c.image_size ||
      images.size(3) != c.image_size) {
    throw coupling::ConfigError("the ViT takes images [B, " + std::to_string(c.channels) + ", " +
                                std::to_string(c.image_size) + ", " + std::to_string(c.image_size) + "], got " +
                                std::to_string(images.dim()) + "-d input " + c10::str(images.sizes()));
  }
  const auto patches = patch_embed->forward(patchify(images, c.patch));
  const auto cls = cls_token.expand({images.size(0), 1, c.d_model});
  return emb_dropout->forward(at::cat({cls, patches}, 1) + pos_embed);
}

at::Tensor VitImpl::head(const at::Tensor& x) { return classifier->forward(ln_f->forward(x.select(1, 0))); }

at::Tensor VitImpl::forward(const at::Tensor& images) { return head(residual_states(images).back()); }

std::vector<at::Tensor> VitImpl::residual_states(const at::Tensor& images) {
  return residual_stream(embed(images), blocks);
}

}  // namespace trainer
