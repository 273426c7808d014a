// ModelAdapter: everything the coupling engine needs from a model, and nothing more.
//
// A transformer with L blocks maps X^0 through X^l = X^{l-1} + f^l(X^{l-1}) (docs/metrics.md section 1).
// The engine reads the residual states X^0..X^L of the probe inputs (one forward) and
// differentiates each block's residual branch f^l. Implement the four required members for your
// model, or wrap lambdas in LambdaAdapter (examples/custom_model.cpp). Optional capabilities are
// virtual members with a default, so new ones can be added without changing existing adapters.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace coupling {

class ModelAdapter {
 public:
  virtual ~ModelAdapter() = default;

  /// Number of blocks L.
  virtual int64_t num_blocks() const = 0;
  /// True when token t's output depends only on tokens <= t (J_{t1 t2} = 0 for t1 > t2).
  virtual bool causal() const = 0;
  /// Residual states X^0..X^L (L + 1 tensors of shape [B, T, d]) for a batch of probe inputs
  /// (token ids, images: whatever the model takes). X^L is the last state before any final norm.
  virtual std::vector<at::Tensor> residual_states(const at::Tensor& inputs) = 0;
  /// Block `block`'s residual branch f^l (0-based block index) on x of shape [B, T, d];
  /// differentiable with respect to x. Must not include the skip connection.
  virtual at::Tensor residual_branch(int64_t block, const at::Tensor& x) = 0;

  /// Optional: bytes of the tensors the model holds while it is measured (its parameters and
  /// buffers; a streamed model: one block), for the memory estimate (memory_estimate.h). 0 =
  /// unknown, counted as nothing.
  virtual int64_t tensor_bytes() const { return 0; }
  /// Optional: called around a measurement, e.g. to switch dropout off (eval mode) and back.
  virtual void begin_measurement() {}
  virtual void end_measurement() {}

  /// Optional capability, the token-local fast path: true when residual_branch_at_token works.
  virtual bool supports_token_local() const { return false; }
  /// f^l(X)_{output_token} for one sequence `x` ([T, d]) whose row `input_token` is replaced by
  /// each row of `replaced` ([B, d]) -> [B, d], differentiable with respect to `replaced`. Lets the
  /// engine build J_{t1 t2} from the work of one token instead of the whole sequence. The engine
  /// passes B equal copies of x's row `input_token` (one replica per Jacobian row it
  /// differentiates), so an implementation may compute each value once and broadcast it, as long
  /// as every row gets its own gradient (libcoupling/src/models/hf/model.cpp does).
  virtual at::Tensor residual_branch_at_token(int64_t /*block*/, const at::Tensor& /*x*/, int64_t /*input_token*/,
                                              const at::Tensor& /*replaced*/, int64_t /*output_token*/) {
    return {};
  }
};

/// Calls begin_measurement() now and end_measurement() on scope exit.
class MeasurementScope {
 public:
  explicit MeasurementScope(ModelAdapter& adapter) : adapter_(adapter) { adapter_.begin_measurement(); }
  ~MeasurementScope() { adapter_.end_measurement(); }
  MeasurementScope(const MeasurementScope&) = delete;
  MeasurementScope& operator=(const MeasurementScope&) = delete;

 private:
  ModelAdapter& adapter_;
};

/// An adapter made of callables: the few lines a user writes for their own model.
class LambdaAdapter : public ModelAdapter {
 public:
  using StatesFn = std::function<std::vector<at::Tensor>(const at::Tensor&)>;
  using BranchFn = std::function<at::Tensor(int64_t, const at::Tensor&)>;
  using HookFn = std::function<void()>;

  LambdaAdapter(int64_t blocks, bool is_causal, StatesFn states, BranchFn branch, HookFn on_begin = {},
                HookFn on_end = {})
      : blocks_(blocks),
        causal_(is_causal),
        states_(std::move(states)),
        branch_(std::move(branch)),
        on_begin_(std::move(on_begin)),
        on_end_(std::move(on_end)) {}

  int64_t num_blocks() const override { return blocks_; }
  bool causal() const override { return causal_; }
  std::vector<at::Tensor> residual_states(const at::Tensor& inputs) override { return states_(inputs); }
  at::Tensor residual_branch(int64_t block, const at::Tensor& x) override { return branch_(block, x); }
  void begin_measurement() override {
    if (on_begin_) on_begin_();
  }
  void end_measurement() override {
    if (on_end_) on_end_();
  }

 private:
  int64_t blocks_;
  bool causal_;
  StatesFn states_;
  BranchFn branch_;
  HookFn on_begin_, on_end_;
};

}  // namespace coupling
