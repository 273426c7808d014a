// One bundled TransformerBlock seen as a one-block model by libcoupling (causal or not), with
// both Jacobian paths: tests compare them and the benchmark times them on a single block.
#pragma once

#include "coupling/engine/model_adapter.h"
#include "trainer/models/transformer_block.h"

#include <vector>

namespace trainer {

class BlockAdapter : public coupling::ModelAdapter {
 public:
  explicit BlockAdapter(TransformerBlock block) : block_(std::move(block)) {}
  int64_t num_blocks() const override { return 1; }
  bool causal() const override { return block_->causal(); }
  /// Inputs are the block inputs X^0 themselves ([B, T, d]).
  std::vector<at::Tensor> residual_states(const at::Tensor& x) override { return {x, block_->forward(x)}; }
  at::Tensor residual_branch(int64_t, const at::Tensor& x) override { return block_->residual_branch(x); }
  bool supports_token_local() const override { return true; }
  at::Tensor residual_branch_at_token(int64_t, const at::Tensor& x, int64_t input_token, const at::Tensor& replaced,
                                      int64_t output_token) override {
    return block_->residual_branch_at_token(x, input_token, replaced, output_token);
  }

 private:
  TransformerBlock block_;
};

}  // namespace trainer
