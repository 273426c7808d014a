// Model adapters over a model that lives in the Python process: a Hugging Face `transformers` model
// of a supported family, rebuilt by the C++ Hugging Face model on its live parameters at every
// measurement, and any other model through Python callables (embed, blocks). See docs/python.md.
#pragma once

#include "coupling/engine/model_adapter.h"
#include "coupling/models/hf/config.h"
#include "coupling/models/hf/model.h"

#include <ATen/core/Tensor.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace coupling::python {

/// A transformers model measured through coupling::hf::HfTransformer built on its own tensors.
/// `tensors` is a Python callable returning {name: tensor} with the names of the model's base
/// model (e.g. "h.0.attn.c_attn.weight"): it is called when a measurement begins, so the model is
/// built on the parameters as they are then (float32 tensors of a layout the C++ model keeps are
/// shared, not copied), and released when the measurement ends.
class LiveHfAdapter : public ModelAdapter {
 public:
  LiveHfAdapter(hf::HfConfig config, pybind11::object tensors);
  ~LiveHfAdapter() override;

  int64_t num_blocks() const override { return config_.layers; }
  bool causal() const override { return config_.causal; }
  std::vector<at::Tensor> residual_states(const at::Tensor& ids) override;
  at::Tensor residual_branch(int64_t block, const at::Tensor& x) override;
  bool supports_token_local() const override { return true; }
  at::Tensor residual_branch_at_token(int64_t block, const at::Tensor& x, int64_t input_token,
                                      const at::Tensor& replaced, int64_t output_token) override;
  /// Every block in float32 (shared or copied, as the layout decides).
  int64_t tensor_bytes() const override;
  void begin_measurement() override;
  void end_measurement() override;

  const hf::HfConfig& config() const { return config_; }

 private:
  hf::HfAdapter& built();

  hf::HfConfig config_;
  pybind11::object tensors_;
  std::optional<hf::HfAdapter> adapter_;
};

/// Any model through Python callables: embed(inputs) -> X^0 [B, T, d] and blocks[l](X) -> X^{l+1}
/// (the whole block, skip connection included), the TorchScript convention; f_l(X) = blocks[l](X) - X.
/// The generic autograd path (no token-local function): slower than a supported family's.
class CallableAdapter : public ModelAdapter {
 public:
  CallableAdapter(pybind11::object embed, std::vector<pybind11::object> blocks, bool causal);
  ~CallableAdapter() override;

  int64_t num_blocks() const override { return static_cast<int64_t>(blocks_.size()); }
  bool causal() const override { return causal_; }
  std::vector<at::Tensor> residual_states(const at::Tensor& inputs) override;
  at::Tensor residual_branch(int64_t block, const at::Tensor& x) override;

 private:
  at::Tensor call_block(int64_t block, const at::Tensor& x) const;

  pybind11::object embed_;
  std::vector<pybind11::object> blocks_;
  bool causal_;
};

}  // namespace coupling::python
