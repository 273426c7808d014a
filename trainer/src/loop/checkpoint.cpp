#include "trainer/loop/checkpoint.h"

#include "coupling/engine/device.h"
#include "coupling/error.h"
#include "trainer/loop/files.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GeneratorImpl.h>
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <type_traits>

namespace fs = std::filesystem;

namespace trainer {
namespace {

/// An archive serialised in memory, then written by checked writes: LibTorch's own file writer
/// aborts the process (an exception from a destructor) when the disk fills up.
void save_archive(torch::serialize::OutputArchive& archive, const std::string& path) {
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomic(path, bytes.str());
}

constexpr const char* kStepPrefix = "step_";

at::Generator default_generator() { return at::detail::getDefaultCPUGenerator(); }

/// optimizer.pt holds AdamW's state by parameter name under this format key. LibTorch's own
/// Optimizer::save keys it by parameter address in a layout that changed in 2.0 (a 1.13 file loads
/// into 2.x onto the wrong parameters), so it is not used.
constexpr const char* kOptimizerFormatKey = "libcoupling_optimizer_format";
constexpr const char* kOptimizerFormat = "adamw-by-parameter-name-1";

/// The key of a parameter in Optimizer::state(): its TensorImpl's address as text in LibTorch 1.x,
/// the address itself in 2.x.
template <class Optimizer>
auto optimizer_state_key(const Optimizer& optimizer, const at::Tensor& parameter) {
  using Key = typename std::decay_t<decltype(optimizer.state())>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream address;  // as c10::guts::to_string writes it
    address << parameter.unsafeGetTensorImpl();
    return address.str();
  } else {
    return static_cast<Key>(parameter.unsafeGetTensorImpl());
  }
}

template <class Optimizer>
auto* adamw_state(Optimizer& optimizer, const at::Tensor& parameter) {
  auto& states = optimizer.state();
  const auto found = states.find(optimizer_state_key(optimizer, parameter));
  return found == states.end() ? nullptr : dynamic_cast<torch::optim::AdamWParamState*>(found->second.get());
}

void save_optimizer(const torch::nn::Module& model, const torch::optim::Optimizer& optimizer, const std::string& path) {
  torch::serialize::OutputArchive archive;
  archive.write(kOptimizerFormatKey, c10::IValue(std::string(kOptimizerFormat)));
  for (const auto& item : model.named_parameters()) {
    const auto* state = adamw_state(optimizer, item.value());
    if (state == nullptr) continue;  // no update has touched it yet
    archive.write(item.key() + ".step", c10::IValue(state->step()));
    archive.write(item.key() + ".exp_avg", state->exp_avg());
    archive.write(item.key() + ".exp_avg_sq", state->exp_avg_sq());
  }
  save_archive(archive, path);
}

/// Fills the optimizer's state from save_optimizer's archive. A file in LibTorch's own format
/// loads only where it was written (LibTorch 1.x, the only one before this format).
void load_optimizer(torch::serialize::InputArchive& archive, const std::string& path, const torch::nn::Module& model,
                    torch::optim::Optimizer& optimizer) {
  c10::IValue format;
  if (!archive.try_read(kOptimizerFormatKey, format)) {
    if (coupling::torch_version().rfind("1.", 0) == 0) {
      optimizer.load(archive);
      return;
    }
    throw coupling::CheckpointError(path + " holds optimizer state in the layout of LibTorch 1.x (written by "
                                    "libcoupling before checkpoints recorded their LibTorch), which LibTorch " +
                                    coupling::torch_version() +
                                    " maps onto the wrong parameters: resume this run with the LibTorch 1.13 build "
                                    "(scripts/build.sh)");
  }
  if (format.toStringRef() != kOptimizerFormat) {
    throw coupling::CheckpointError(path + " holds optimizer state in format '" + format.toStringRef() +
                                    "', which this libcoupling does not know (it reads '" + kOptimizerFormat + "')");
  }
  for (const auto& item : model.named_parameters()) {
    c10::IValue step;
    if (!archive.try_read(item.key() + ".step", step)) continue;
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    at::Tensor exp_avg, exp_avg_sq;
    archive.read(item.key() + ".exp_avg", exp_avg);
    archive.read(item.key() + ".exp_avg_sq", exp_avg_sq);
    if (!exp_avg.sizes().equals(item.value().sizes()) || !exp_avg_sq.sizes().equals(item.value().sizes())) {
      throw coupling::CheckpointError(path + ": the optimizer state of " + item.key() +
                                      " does not have its parameter's shape");
    }
    state->step(step.toInt());
    state->exp_avg(exp_avg);
    state->exp_avg_sq(exp_avg_sq);
    optimizer.state()[optimizer_state_key(optimizer, item.value())] = std::move(state);
  }
}

/// Where the model's parameters live: checkpoints load straight onto that device (a checkpoint
/// written on one device loads on any other).
c10::Device device_of(const torch::nn::Module& model) {
  const auto parameters = model.parameters();
  return parameters.empty() ? c10::Device(c10::kCPU) : parameters.front().device();
}

}  // namespace

void save_weights_for_python(const torch::nn::Module& model, const std::string& path) {
  // A tuple of (name, tensor) pairs, not a c10::Dict: LibTorch pickles typed dicts with a
  // torch.jit type tag that torch.load (weights_only, the default since PyTorch 2.6) refuses,
  // while tuples, strings and tensors are plain data.
  std::vector<c10::IValue> pairs;
  for (const auto& item : model.named_parameters()) {
    pairs.emplace_back(c10::ivalue::Tuple::create({item.key(), item.value().detach().cpu().clone()}));
  }
  for (const auto& item : model.named_buffers()) {
    pairs.emplace_back(c10::ivalue::Tuple::create({item.key(), item.value().detach().cpu().clone()}));
  }
  const std::vector<char> bytes = torch::pickle_save(c10::ivalue::Tuple::create(std::move(pairs)));
  write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

std::string checkpoint_dir(const std::string& out, int64_t step) {
  return (fs::path(out) / "checkpoints" / (kStepPrefix + std::to_string(step))).string();
}

std::map<int64_t, std::string> checkpoints(const std::string& out) {
  const fs::path root = fs::path(out) / "checkpoints";
  std::map<int64_t, std::string> found;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return found;
  static const std::regex pattern("step_([0-9]+)");
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, match, pattern)) {
      found[std::stoll(match[1].str())] = entry.path().string();
    }
  }
  return found;
}

std::optional<std::string> latest_checkpoint(const std::string& out) {
  const auto found = checkpoints(out);
  if (found.empty()) return std::nullopt;
  return found.rbegin()->second;
}

void save_checkpoint(const std::string& out, const TrainerState& state, const torch::nn::Module& model,
                     const torch::optim::Optimizer& optimizer, const std::string& config_toml) {
  const fs::path final_dir = checkpoint_dir(out, state.step);
  const fs::path temp_dir = final_dir.string() + ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(temp_dir, ec);
  fs::create_directories(temp_dir, ec);
  if (ec) {
    throw coupling::IoError("cannot create checkpoint directory " + temp_dir.string() + ": " + ec.message() +
                            " (is the disk full?)");
  }
  try {
    torch::serialize::OutputArchive model_archive;
    model.save(model_archive);
    save_archive(model_archive, (temp_dir / "model.pt").string());

    save_optimizer(model, optimizer, (temp_dir / "optimizer.pt").string());

    torch::serialize::OutputArchive state_archive;
    state_archive.write("step", c10::IValue(state.step));
    state_archive.write("sampler_rng", c10::IValue(state.sampler_rng));
    const auto rng = state.torch_rng.defined() ? state.torch_rng : default_generator().get_state().unsqueeze(0);
    state_archive.write("torch_rng", c10::IValue(rng));
    state_archive.write("tokens_seen", c10::IValue(state.tokens_seen));
    state_archive.write("train_seconds", c10::IValue(state.train_seconds));
    state_archive.write("libtorch_version", c10::IValue(coupling::torch_version()));
    c10::Dict<std::string, std::string> callback_state;
    for (const auto& [key, value] : state.callback_state) callback_state.insert(key, value);
    state_archive.write("callback_state", c10::IValue(callback_state));
    save_archive(state_archive, (temp_dir / "state.pt").string());

    save_weights_for_python(model, (temp_dir / "weights.pt").string());
    write_file_atomic((temp_dir / "config.toml").string(), config_toml);
  } catch (const c10::Error& e) {
    fs::remove_all(temp_dir, ec);
    throw coupling::IoError("cannot write checkpoint " + final_dir.string() + " (is the disk full?): " +
                            e.what_without_backtrace());
  } catch (...) {
    fs::remove_all(temp_dir, ec);
    throw;
  }
  fs::remove_all(final_dir, ec);
  fs::rename(temp_dir, final_dir, ec);
  if (ec) throw coupling::IoError("cannot move checkpoint into " + final_dir.string() + ": " + ec.message());
}

void load_model(const std::string& dir, torch::nn::Module& model) {
  const auto path = (fs::path(dir) / "model.pt").string();
  if (!fs::is_regular_file(path)) throw coupling::CheckpointError("no model.pt in checkpoint " + dir);
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, device_of(model));
    model.load(archive);
  } catch (const c10::Error& e) {
    throw coupling::CheckpointError("cannot load " + path + " (" + e.what_without_backtrace() +
                                    "): the checkpoint is corrupt or from a model of another shape");
  }
}

TrainerState load_checkpoint(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                             int64_t rank, int64_t world_size) {
  for (const char* file : {"model.pt", "optimizer.pt", "state.pt", "config.toml"}) {
    if (!fs::is_regular_file(fs::path(dir) / file)) {
      throw coupling::CheckpointError("checkpoint " + dir + " is incomplete (no " + file +
                                      "): delete it to resume from the previous checkpoint");
    }
  }
  TrainerState state;
  try {
    const c10::Device device = device_of(model);
    torch::serialize::InputArchive model_archive;
    model_archive.load_from((fs::path(dir) / "model.pt").string(), device);
    model.load(model_archive);

    torch::serialize::InputArchive optimizer_archive;
    optimizer_archive.load_from((fs::path(dir) / "optimizer.pt").string(), device);
    load_optimizer(optimizer_archive, (fs::path(dir) / "optimizer.pt").string(), model, optimizer);

    torch::serialize::InputArchive state_archive;
    state_archive.load_from((fs::path(dir) / "state.pt").string());
    c10::IValue value;
    state_archive.read("step", value);
    state.step = value.toInt();
    state_archive.read("sampler_rng", value);
    state.sampler_rng = value.toStringRef();
    state_archive.read("torch_rng", value);
    state.torch_rng = value.toTensor().dim() == 1 ? value.toTensor().unsqueeze(0) : value.toTensor();
    state_archive.read("tokens_seen", value);
    state.tokens_seen = value.toInt();
    state_archive.read("train_seconds", value);
    state.train_seconds = value.toDouble();
    state_archive.read("callback_state", value);
    for (const auto& entry : value.toGenericDict()) {
      state.callback_state[entry.key().toStringRef()] = entry.value().toStringRef();
    }
  } catch (const c10::Error& e) {
    throw coupling::CheckpointError("checkpoint " + dir + " is corrupt or from an incompatible model (" +
                                    e.what_without_backtrace() +
                                    "): delete it to resume from the previous checkpoint");
  }
  if (state.torch_rng.size(0) != world_size) {
    throw coupling::CheckpointError("checkpoint " + dir + " was written by a job of " +
                                    std::to_string(state.torch_rng.size(0)) + " rank(s); resume it with " +
                                    std::to_string(state.torch_rng.size(0)) + " (this launch has " +
                                    std::to_string(world_size) + ")");
  }
  // A fresh tensor: LibTorch 2.x reads a generator state from the start of its storage.
  default_generator().set_state(state.torch_rng.select(0, rank).clone());
  return state;
}

}  // namespace trainer
