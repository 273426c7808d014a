#include "coupling/models/torchscript_model.h"

#include "coupling/error.h"

#include <ATen/ATen.h>
#include <torch/csrc/api/include/torch/serialize.h>
#include <torch/script.h>

#include <fstream>
#include <iterator>
#include <vector>

namespace coupling {
namespace {

const char* const kConvention =
    " (see the convention in coupling/models/torchscript_model.h and examples/export_torchscript.py)";

class TorchScriptAdapter : public ModelAdapter {
 public:
  TorchScriptAdapter(torch::jit::Module module, std::vector<torch::jit::Module> blocks, bool causal)
      : module_(std::move(module)), blocks_(std::move(blocks)), causal_(causal) {}

  int64_t num_blocks() const override { return static_cast<int64_t>(blocks_.size()); }
  bool causal() const override { return causal_; }
  std::vector<at::Tensor> residual_states(const at::Tensor& inputs) override {
    std::vector<at::Tensor> states{module_.get_method("embed")({inputs}).toTensor()};
    for (auto& block : blocks_) states.push_back(block.forward({states.back()}).toTensor());
    return states;
  }
  at::Tensor residual_branch(int64_t block, const at::Tensor& x) override {
    return blocks_[static_cast<size_t>(block)].forward({x}).toTensor() - x;
  }
  void begin_measurement() override {
    was_training_ = module_.is_training();
    module_.eval();
  }
  void end_measurement() override { module_.train(was_training_); }
  int64_t tensor_bytes() const override {
    int64_t bytes = 0;
    for (const auto& tensor : module_.parameters()) bytes += static_cast<int64_t>(tensor.nbytes());
    for (const auto& tensor : module_.buffers()) bytes += static_cast<int64_t>(tensor.nbytes());
    return bytes;
  }

 private:
  torch::jit::Module module_;
  std::vector<torch::jit::Module> blocks_;
  bool causal_;
  bool was_training_ = false;
};

}  // namespace

std::shared_ptr<ModelAdapter> load_torchscript_model(const std::string& path, c10::Device device) {
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    throw IoError("cannot load TorchScript module " + path + ": " + e.what_without_backtrace() +
                  " -- export it with torch.jit.script(model).save(path) or torch.jit.trace");
  }
  if (!module.find_method("embed")) {
    throw ConfigError(path +
                      " has no method 'embed': export a model with a @torch.jit.export def embed(self, x) "
                      "returning X^0 of shape [B, T, d]" +
                      kConvention);
  }
  if (!module.hasattr("blocks") || !module.attr("blocks").isModule()) {
    throw ConfigError(path +
                      " has no submodule 'blocks': keep the transformer blocks in an nn.ModuleList named "
                      "'blocks'" +
                      kConvention);
  }
  std::vector<torch::jit::Module> blocks;
  for (const auto& block : module.attr("blocks").toModule().children()) {
    if (!block.find_method("forward")) throw ConfigError(path + ": a module in 'blocks' has no forward" + kConvention);
    blocks.push_back(block);
  }
  if (blocks.empty()) throw ConfigError(path + ": 'blocks' is empty" + kConvention);
  if (!module.hasattr("causal") || !module.attr("causal").isBool()) {
    throw ConfigError(path +
                      " has no bool attribute 'causal': set self.causal = True (decoder) or False (encoder, "
                      "ViT) in the model" +
                      kConvention);
  }
  return std::make_shared<TorchScriptAdapter>(module, std::move(blocks), module.attr("causal").toBool());
}

at::Tensor load_saved_tensor(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("cannot open " + path);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    throw IoError("cannot read " + path + " as a tensor saved with torch.save: " + e.what_without_backtrace());
  }
  if (!value.isTensor()) throw IoError(path + " holds a " + value.tagKind() + ", not a tensor: torch.save a tensor");
  return value.toTensor();
}

}  // namespace coupling
