#include "trainer/checkpoint.h"

#include "coupling/error.h"
#include "trainer/files.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GeneratorImpl.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

namespace fs = std::filesystem;

namespace trainer {
namespace {

constexpr const char* kStepPrefix = "step_";

at::Generator default_generator() { return at::detail::getDefaultCPUGenerator(); }

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
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw coupling::IoError("cannot write " + path);
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
  if (ec) throw coupling::IoError("cannot create checkpoint directory " + temp_dir.string() + ": " + ec.message());
  try {
    torch::serialize::OutputArchive model_archive;
    model.save(model_archive);
    model_archive.save_to((temp_dir / "model.pt").string());

    torch::serialize::OutputArchive optimizer_archive;
    optimizer.save(optimizer_archive);
    optimizer_archive.save_to((temp_dir / "optimizer.pt").string());

    torch::serialize::OutputArchive state_archive;
    state_archive.write("step", c10::IValue(state.step));
    state_archive.write("sampler_rng", c10::IValue(state.sampler_rng));
    const auto rng = state.torch_rng.defined() ? state.torch_rng : default_generator().get_state().unsqueeze(0);
    state_archive.write("torch_rng", c10::IValue(rng));
    state_archive.write("tokens_seen", c10::IValue(state.tokens_seen));
    state_archive.write("train_seconds", c10::IValue(state.train_seconds));
    c10::Dict<std::string, std::string> callback_state;
    for (const auto& [key, value] : state.callback_state) callback_state.insert(key, value);
    state_archive.write("callback_state", c10::IValue(callback_state));
    state_archive.save_to((temp_dir / "state.pt").string());

    save_weights_for_python(model, (temp_dir / "weights.pt").string());
    write_file_atomic((temp_dir / "config.toml").string(), config_toml);
  } catch (const c10::Error& e) {
    fs::remove_all(temp_dir, ec);
    throw coupling::IoError("cannot write checkpoint " + final_dir.string() + ": " + e.what_without_backtrace());
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
    optimizer.load(optimizer_archive);

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
