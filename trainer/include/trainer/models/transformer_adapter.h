// The bundled transformers (GPT: causal; ViT: non-causal) seen through libcoupling's
// ModelAdapter: the residual states are X^0..X^L, and block l's residual branch is
// TransformerBlock::residual_branch. Measurements run in eval mode (no dropout); the previous
// mode is restored. Both support the engine's token-local fast path
// (TransformerBlock::residual_branch_at_token).
#pragma once

#include "coupling/engine/model_adapter.h"
#include "trainer/models/gpt.h"
#include "trainer/models/vit.h"

namespace trainer {

/// `Model` is a module holder (Gpt, Vit) with num_blocks(), block(l) and residual_states(inputs).
template <class Model>
class TransformerAdapter : public coupling::ModelAdapter {
 public:
  explicit TransformerAdapter(Model model) : model_(std::move(model)) {}

  int64_t num_blocks() const override { return model_->num_blocks(); }
  bool causal() const override { return model_->block(0)->causal(); }
  /// GPT: token ids [B, T]; ViT: images [B, C, H, W].
  std::vector<at::Tensor> residual_states(const at::Tensor& inputs) override { return model_->residual_states(inputs); }
  at::Tensor residual_branch(int64_t block, const at::Tensor& x) override {
    return model_->block(block)->residual_branch(x);
  }
  void begin_measurement() override {
    was_training_ = model_->is_training();
    model_->eval();
  }
  void end_measurement() override { model_->train(was_training_); }
  bool supports_token_local() const override { return true; }
  at::Tensor residual_branch_at_token(int64_t block, const at::Tensor& x, int64_t input_token,
                                      const at::Tensor& replaced, int64_t output_token) override {
    return model_->block(block)->residual_branch_at_token(x, input_token, replaced, output_token);
  }
  int64_t tensor_bytes() const override {
    int64_t bytes = 0;
    for (const auto& tensor : model_->parameters()) bytes += static_cast<int64_t>(tensor.nbytes());
    for (const auto& tensor : model_->buffers()) bytes += static_cast<int64_t>(tensor.nbytes());
    return bytes;
  }

 private:
  Model model_;
  bool was_training_ = false;
};

using GptAdapter = TransformerAdapter<Gpt>;
using VitAdapter = TransformerAdapter<Vit>;

}  // namespace trainer
