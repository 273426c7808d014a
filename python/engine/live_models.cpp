#include "live_models.h"

#include "coupling/error.h"

#include <fmt/format.h>
#include <pybind11/stl.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include <map>
#include <string>
#include <utility>

namespace py = pybind11;

namespace coupling::python {
namespace {

std::string shape_text(at::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

/// The model's tensors by name, as the callable gives them now; every one checked when asked for.
hf::TensorSource live_source(const py::object& tensors) {
  auto by_name =
      std::make_shared<std::map<std::string, at::Tensor>>(py::cast<std::map<std::string, at::Tensor>>(tensors()));
  return [by_name](const std::string& name, const std::vector<int64_t>& shape) {
    const auto found = by_name->find(name);
    if (found == by_name->end()) {
      throw ConfigError("the model has no tensor '" + name +
                        "', which its config's family needs: is it a transformers model of that family?");
    }
    if (found->second.sizes() != at::IntArrayRef(shape)) {
      throw ConfigError(fmt::format("the model's tensor '{}' has shape {}, its config says {}", name,
                                    shape_text(found->second.sizes()), shape_text(shape)));
    }
    return found->second.detach();
  };
}

}  // namespace

LiveHfAdapter::LiveHfAdapter(hf::HfConfig config, py::object tensors)
    : config_(std::move(config)), tensors_(std::move(tensors)) {}

LiveHfAdapter::~LiveHfAdapter() {
  py::gil_scoped_acquire gil;
  adapter_.reset();
  tensors_ = py::object();
}

hf::HfAdapter& LiveHfAdapter::built() {
  if (!adapter_) {
    py::gil_scoped_acquire gil;
    adapter_.emplace(hf::HfTransformer(config_, live_source(tensors_), at::kFloat));
  }
  return *adapter_;
}

void LiveHfAdapter::begin_measurement() {
  adapter_.reset();  // the parameters as they are now
  built();
}

void LiveHfAdapter::end_measurement() { adapter_.reset(); }

std::vector<at::Tensor> LiveHfAdapter::residual_states(const at::Tensor& ids) { return built().residual_states(ids); }

at::Tensor LiveHfAdapter::residual_branch(int64_t block, const at::Tensor& x) {
  return built().residual_branch(block, x);
}

at::Tensor LiveHfAdapter::residual_branch_at_token(int64_t block, const at::Tensor& x, int64_t input_token,
                                                   const at::Tensor& replaced, int64_t output_token) {
  return built().residual_branch_at_token(block, x, input_token, replaced, output_token);
}

int64_t LiveHfAdapter::tensor_bytes() const { return config_.layers * config_.block_parameters() * 4; }

CallableAdapter::CallableAdapter(py::object embed, std::vector<py::object> blocks, bool causal)
    : embed_(std::move(embed)), blocks_(std::move(blocks)), causal_(causal) {
  if (blocks_.empty()) throw ConfigError("blocks is empty: give the model's blocks, in order");
}

CallableAdapter::~CallableAdapter() {
  py::gil_scoped_acquire gil;
  embed_ = py::object();
  blocks_.clear();
}

at::Tensor CallableAdapter::call_block(int64_t block, const at::Tensor& x) const {
  py::gil_scoped_acquire gil;
  const py::object out = blocks_.at(static_cast<size_t>(block))(x);
  if (!THPVariable_Check(out.ptr())) {
    throw ConfigError(
        fmt::format("blocks[{}] returned a {}, not a tensor: give callables that map X [B, T, d] to "
                    "the block's output X + f(X)",
                    block, std::string(py::str(py::type::of(out).attr("__name__")))));
  }
  return py::cast<at::Tensor>(out);
}

std::vector<at::Tensor> CallableAdapter::residual_states(const at::Tensor& inputs) {
  std::vector<at::Tensor> states;
  {
    py::gil_scoped_acquire gil;
    const py::object x0 = embed_(inputs);
    if (!THPVariable_Check(x0.ptr()))
      throw ConfigError("embed returned no tensor: it must map inputs to X^0 [B, T, d]");
    states.push_back(py::cast<at::Tensor>(x0));
  }
  for (int64_t l = 0; l < num_blocks(); ++l) states.push_back(call_block(l, states.back()));
  return states;
}

at::Tensor CallableAdapter::residual_branch(int64_t block, const at::Tensor& x) { return call_block(block, x) - x; }

}  // namespace coupling::python
