#include "trainer/loop/checkpoint.h"

#include "coupling/engine/device.h"
#include "coupling/error.h"
#include "coupling/formats/safetensors.h"
#include "coupling/formats/sha256.h"
#include "trainer/loop/files.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GeneratorImpl.h>
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <type_traits>

namespace fs = std::filesystem;
using nlohmann::json;
namespace st = coupling::safetensors;

namespace trainer {
namespace {

constexpr const char* kStepPrefix = "step_";
constexpr const char* kManifest = "manifest.json";
constexpr const char* kManifestKind = "libcoupling checkpoint";
/// The files of a checkpoint, each listed in its manifest with size and SHA-256.
const std::vector<std::string> kCheckpointFiles = {"model.safetensors", "optimizer.safetensors", "rng.safetensors",
                                                   "state.json", "config.toml"};
/// A manifest or state file larger than this is not one of ours.
constexpr std::uintmax_t kMaxJsonBytes = 16 << 20;

/// The step of a checkpoint directory's name step_<N>, if it is one (N of 1 to 18 digits: longer
/// is not a step this code wrote).
std::optional<int64_t> step_of_name(const std::string& name) {
  static const std::regex pattern("step_([0-9]{1,18})");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) return std::nullopt;
  return std::stoll(match[1].str());
}

at::Generator default_generator() { return at::detail::getDefaultCPUGenerator(); }

/// optimizer.safetensors holds AdamW's state by parameter name (LibTorch's own Optimizer::save keys
/// it by parameter address, in a layout that changed between LibTorch 1.x and 2.x).
constexpr const char* kOptimizerFormatKey = "format";
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

/// Every parameter and buffer of `model`, by name: what model.safetensors holds.
std::vector<std::pair<std::string, at::Tensor>> named_tensors(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : model.named_parameters()) tensors.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers()) tensors.emplace_back(item.key(), item.value());
  return tensors;
}

std::string optimizer_bytes(const torch::nn::Module& model, const torch::optim::Optimizer& optimizer) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& item : model.named_parameters()) {
    const auto* state = adamw_state(optimizer, item.value());
    if (state == nullptr) continue;  // no update has touched it yet
    tensors.emplace_back(item.key() + ".step", at::scalar_tensor(state->step(), at::kLong));
    tensors.emplace_back(item.key() + ".exp_avg", state->exp_avg());
    tensors.emplace_back(item.key() + ".exp_avg_sq", state->exp_avg_sq());
  }
  return st::serialize(tensors, {{kOptimizerFormatKey, kOptimizerFormat}});
}

/// The error for checkpoint `dir`, with the advice that always works.
coupling::CheckpointError broken(const std::string& dir, const std::string& what) {
  return coupling::CheckpointError("checkpoint " + dir + " " + what +
                                   ": delete it to resume from the previous checkpoint");
}

/// Copies into targets, checked before the first copy: a checkpoint is loaded whole or not at all.
using StagedCopies = std::vector<std::pair<at::Tensor, at::Tensor>>;  // (target, source)

/// `source` (from a checkpoint) staged for `target`, which must have its shape.
void stage_checked(StagedCopies& copies, const at::Tensor& source, at::Tensor target, const std::string& dir,
                   const std::string& name) {
  if (!source.sizes().equals(target.sizes())) {
    throw coupling::CheckpointError("checkpoint " + dir + " holds another model: " + name + " has shape " +
                                    c10::str(source.sizes()) + " there and " + c10::str(target.sizes()) +
                                    " in this model");
  }
  copies.emplace_back(std::move(target), source);
}

void commit(const StagedCopies& copies) {
  at::NoGradGuard no_grad;
  for (const auto& [target, source] : copies) target.copy_(source);
}

/// The copies that load `file`, checkpoint `dir`'s model.safetensors, into `model`.
StagedCopies stage_model(const std::string& dir, const st::SafetensorsFile& file, torch::nn::Module& model) {
  StagedCopies copies;
  auto stage = [&](const std::string& name, const at::Tensor& target) {
    if (!file.contains(name))
      throw coupling::CheckpointError("checkpoint " + dir + " holds another model: it has no " + name);
    stage_checked(copies, file.tensor(name), target, dir, name);
  };
  for (const auto& item : model.named_parameters()) stage(item.key(), item.value());
  for (const auto& item : model.named_buffers()) stage(item.key(), item.value());
  if (copies.size() != file.header().tensors.size()) {
    throw coupling::CheckpointError("checkpoint " + dir + " holds another model: it has " +
                                    std::to_string(file.header().tensors.size()) + " tensors and this model " +
                                    std::to_string(copies.size()));
  }
  return copies;
}

using StagedOptimizerState = std::vector<std::pair<at::Tensor, std::unique_ptr<torch::optim::AdamWParamState>>>;

/// AdamW's state from `file`, checkpoint `dir`'s optimizer.safetensors, by parameter, checked
/// whole before any is used.
StagedOptimizerState stage_optimizer(const std::string& dir, const st::SafetensorsFile& file,
                                     const torch::nn::Module& model) {
  const std::string& path = file.path();
  const auto format = file.header().metadata.find(kOptimizerFormatKey);
  if (format == file.header().metadata.end() || format->second != kOptimizerFormat) {
    throw coupling::CheckpointError(path + " holds optimizer state in another format than '" + kOptimizerFormat + "'");
  }
  StagedOptimizerState states;
  for (const auto& item : model.named_parameters()) {
    if (!file.contains(item.key() + ".step")) continue;
    const at::Tensor step = file.tensor(item.key() + ".step");
    if (step.dim() != 0 || step.scalar_type() != at::kLong || step.item<int64_t>() < 0) {
      throw broken(dir, "has a malformed optimizer step");
    }
    StagedCopies moments;
    at::Tensor exp_avg = at::zeros_like(item.value()), exp_avg_sq = at::zeros_like(item.value());
    stage_checked(moments, file.tensor(item.key() + ".exp_avg"), exp_avg, dir, item.key() + ".exp_avg");
    stage_checked(moments, file.tensor(item.key() + ".exp_avg_sq"), exp_avg_sq, dir, item.key() + ".exp_avg_sq");
    commit(moments);  // into fresh tensors: the optimizer is untouched until commit_optimizer
    auto state = std::make_unique<torch::optim::AdamWParamState>();
    state->step(step.item<int64_t>());
    state->exp_avg(exp_avg);
    state->exp_avg_sq(exp_avg_sq);
    states.emplace_back(item.value(), std::move(state));
  }
  if (3 * states.size() != file.header().tensors.size()) {
    throw broken(dir, "has optimizer state for parameters this model lacks");
  }
  return states;
}

void commit_optimizer(StagedOptimizerState& states, torch::optim::Optimizer& optimizer) {
  for (auto& [parameter, state] : states)
    optimizer.state()[optimizer_state_key(optimizer, parameter)] = std::move(state);
}

/// The JSON object in `text`, file `name` of checkpoint `dir`.
json parse_json_object(const std::string& text, const std::string& dir, const std::string& name) {
  const json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) throw broken(dir, "has a " + name + " that is not a JSON object");
  return value;
}

/// manifest.json of checkpoint `dir`, checked: its kind, a format this code reads, and an entry
/// for every checkpoint file.
struct Manifest {
  int version = 0;
  std::map<std::string, std::pair<std::uintmax_t, std::string>> files;  ///< name -> (bytes, SHA-256)
};

/// The bytes of regular file `path` if it has `size` of them, read through one descriptor (a FIFO
/// or device is refused without blocking); nullopt if it is absent, not a regular file, of another
/// size or cannot be read.
std::optional<std::string> read_file_of_size(const fs::path& path, std::uintmax_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> bytes;
  struct stat info {};
  if (::fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && static_cast<std::uintmax_t>(info.st_size) == size) {
    bytes.emplace(size, '\0');
    for (std::uintmax_t done = 0; bytes && done < size;) {
      const ssize_t got = ::read(fd, bytes->data() + done, size - done);
      if (got > 0) {
        done += static_cast<std::uintmax_t>(got);
      } else if (got == 0 || errno != EINTR) {
        bytes.reset();  // shrunk meanwhile, or unreadable
      }
    }
  }
  ::close(fd);
  return bytes;
}

Manifest read_manifest(const std::string& dir) {
  const fs::path manifest_path = fs::path(dir) / kManifest;
  if (!fs::exists(manifest_path)) {
    if (fs::exists(fs::path(dir) / "model.pt")) {
      throw coupling::CheckpointError(
          "checkpoint " + dir +
          " has format 1 (TorchScript archives, written by libcoupling before data-only checkpoints), which can run "
          "code when loaded, so it is not opened: start the run again with this libcoupling (format " +
          std::to_string(kCheckpointFormat) + ")");
    }
    throw broken(dir, "is incomplete (no manifest.json)");
  }
  std::error_code ec;
  const auto size = fs::file_size(manifest_path, ec);
  const auto text = ec || size > kMaxJsonBytes ? std::nullopt : read_file_of_size(manifest_path, size);
  if (!text) throw broken(dir, std::string("has no readable ") + kManifest);
  const json manifest = parse_json_object(*text, dir, kManifest);
  try {
    if (manifest.at("format").get<std::string>() != kManifestKind) throw broken(dir, "has a foreign manifest.json");
    Manifest checked;
    checked.version = manifest.at("version").get<int>();
    if (checked.version < kOldestCheckpointFormat || checked.version > kCheckpointFormat) {
      throw coupling::CheckpointError("checkpoint " + dir + " has format " + std::to_string(checked.version) +
                                      " and this libcoupling reads formats " + std::to_string(kOldestCheckpointFormat) +
                                      " to " + std::to_string(kCheckpointFormat) +
                                      ": use the libcoupling that wrote it");
    }
    const json& files = manifest.at("files");
    if (files.size() != kCheckpointFiles.size()) throw broken(dir, "has a manifest.json that lists other files");
    for (const auto& name : kCheckpointFiles) {
      const json& entry = files.at(name);
      checked.files[name] = {entry.at("bytes").get<std::uintmax_t>(), entry.at("sha256").get<std::string>()};
    }
    return checked;
  } catch (const json::exception&) {
    throw broken(dir, "has a malformed manifest.json");
  }
}

/// The path of file `name` of checkpoint `dir`; CheckpointError unless it is a regular file.
fs::path present_file(const std::string& dir, const std::string& name) {
  const fs::path path = fs::path(dir) / name;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw broken(dir, "is incomplete (no " + name + ")");
  return path;
}

coupling::CheckpointError corrupt_file(const std::string& dir, const std::string& name) {
  return broken(dir, "is corrupt: " + name + " does not match its size and SHA-256 in manifest.json");
}

/// File `name` of checkpoint `dir`, read once into memory and checked against its size and SHA-256
/// in the manifest. What is loaded is these bytes, the ones hashed: a file swapped or rewritten
/// after the check is never read.
std::shared_ptr<const std::string> read_verified(const std::string& dir, const Manifest& manifest,
                                                 const std::string& name) {
  const auto& [size, sha256] = manifest.files.at(name);
  auto bytes = read_file_of_size(present_file(dir, name), size);
  if (!bytes || coupling::sha256_hex(*bytes) != sha256) throw corrupt_file(dir, name);
  return std::make_shared<const std::string>(std::move(*bytes));
}

/// Every file of checkpoint `dir`, verified (read_verified), by name: nothing is loaded until all
/// have passed.
std::map<std::string, std::shared_ptr<const std::string>> read_verified_checkpoint(const std::string& dir,
                                                                                   int* format = nullptr) {
  const Manifest manifest = read_manifest(dir);
  if (format != nullptr) *format = manifest.version;
  std::map<std::string, std::shared_ptr<const std::string>> files;
  for (const auto& name : kCheckpointFiles) files[name] = read_verified(dir, manifest, name);
  return files;
}

}  // namespace

int verify_checkpoint(const std::string& dir) {
  // Hashed a chunk at a time, nothing kept: a series' early check holds no file in memory (the
  // loaders verify the bytes they load themselves).
  const Manifest manifest = read_manifest(dir);
  for (const auto& [name, expected] : manifest.files) {
    const fs::path path = present_file(dir, name);
    std::error_code ec;
    if (fs::file_size(path, ec) != expected.first || coupling::sha256_file_hex(path.string()) != expected.second) {
      throw corrupt_file(dir, name);
    }
  }
  return manifest.version;
}

std::string read_checkpoint_config(const std::string& dir) {
  return *read_verified(dir, read_manifest(dir), "config.toml");
}

void save_model_safetensors(const torch::nn::Module& model, const std::string& path) {
  write_file_atomic(path, st::serialize(named_tensors(model)));
}

std::string checkpoint_dir(const std::string& out, int64_t step) {
  return (fs::path(out) / "checkpoints" / (kStepPrefix + std::to_string(step))).string();
}

std::map<int64_t, std::string> checkpoints(const std::string& out) {
  const fs::path root = fs::path(out) / "checkpoints";
  std::map<int64_t, std::string> found;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return found;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const auto step = step_of_name(entry.path().filename().string());
    if (entry.is_directory() && step) found[*step] = entry.path().string();
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
  std::error_code ec;
  fs::create_directories(final_dir.parent_path(), ec);
  // A fresh directory (mkdtemp): a name planted in advance is never reused or followed.
  std::string temp_name = final_dir.string() + ".tmp-XXXXXX";
  if (ec || ::mkdtemp(temp_name.data()) == nullptr) {
    throw coupling::IoError("cannot create a checkpoint directory next to " + final_dir.string() + ": " +
                            (ec ? ec.message() : std::strerror(errno)) + " (is the disk full?)");
  }
  const fs::path temp_dir = temp_name;
  fs::permissions(temp_dir,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                      fs::perms::others_exec,
                  ec);
  try {
    json manifest = {{"format", kManifestKind}, {"version", kCheckpointFormat}, {"files", json::object()}};
    auto write = [&](const std::string& name, const std::string& bytes) {
      write_file_atomic((temp_dir / name).string(), bytes);
      manifest["files"][name] = {{"bytes", bytes.size()}, {"sha256", coupling::sha256_hex(bytes)}};
    };
    write("model.safetensors", st::serialize(named_tensors(model)));
    write("optimizer.safetensors", optimizer_bytes(model, optimizer));
    const auto rng = state.torch_rng.defined() ? state.torch_rng : default_generator().get_state().unsqueeze(0);
    write("rng.safetensors", st::serialize({{"torch_rng", rng}}));
    const json trainer_state = {{"step", state.step},
                                {"sampler_rng", state.sampler_rng},
                                {"tokens_seen", state.tokens_seen},
                                {"data_sha256", state.data_sha256},
                                {"train_seconds", state.train_seconds},
                                {"libtorch_version", coupling::torch_version()},
                                {"callback_state", state.callback_state}};
    write("state.json", trainer_state.dump(2) + "\n");
    write("config.toml", config_toml);
    write_file_atomic((temp_dir / kManifest).string(), manifest.dump(2) + "\n");
  } catch (...) {
    fs::remove_all(temp_dir, ec);
    throw;
  }
  // A checkpoint of the same step (a resumed run saving it again) is moved aside, not deleted,
  // until the new one is in place; then the rename is made durable.
  const fs::path replaced = temp_dir.string() + ".replaced";
  const bool had_one = fs::exists(final_dir, ec);
  if (had_one) fs::rename(final_dir, replaced, ec);
  if (!ec) fs::rename(temp_dir, final_dir, ec);
  if (ec) throw coupling::IoError("cannot move checkpoint into " + final_dir.string() + ": " + ec.message());
  if (had_one) fs::remove_all(replaced, ec);
  const int parent = ::open(final_dir.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent >= 0) {
    ::fsync(parent);
    ::close(parent);
  }
}

void load_model(const std::string& dir, torch::nn::Module& model) {
  const Manifest manifest = read_manifest(dir);
  const auto bytes = read_verified(dir, manifest, "model.safetensors");
  try {
    commit(stage_model(dir, st::SafetensorsFile((fs::path(dir) / "model.safetensors").string(), bytes), model));
  } catch (const coupling::DataError& e) {
    throw broken(dir, std::string("is malformed (") + e.what() + ")");
  }
}

TrainerState load_checkpoint(const std::string& dir, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                             int64_t rank, int64_t world_size) {
  TrainerState state;
  const auto files = read_verified_checkpoint(dir, &state.format);
  auto safetensors = [&](const std::string& name) {
    return st::SafetensorsFile((fs::path(dir) / name).string(), files.at(name));
  };
  try {
    const json saved = parse_json_object(*files.at("state.json"), dir, "state.json");
    state.step = saved.at("step").get<int64_t>();
    state.sampler_rng = saved.at("sampler_rng").get<std::string>();
    state.tokens_seen = saved.at("tokens_seen").get<int64_t>();
    state.data_sha256 = saved.at("data_sha256").get<std::string>();
    state.train_seconds = saved.at("train_seconds").get<double>();
    state.callback_state = saved.at("callback_state").get<std::map<std::string, std::string>>();
    state.torch_rng = safetensors("rng.safetensors").tensor("torch_rng").clone();
  } catch (const json::exception& e) {
    throw broken(dir, std::string("has a malformed state.json (") + e.what() + ")");
  } catch (const coupling::DataError& e) {
    throw broken(dir, std::string("is malformed (") + e.what() + ")");
  }
  if (state.torch_rng.dim() != 2 || state.torch_rng.scalar_type() != at::kByte || state.torch_rng.size(0) < 1 ||
      state.torch_rng.size(1) != default_generator().get_state().numel()) {
    throw broken(dir, "has a malformed rng.safetensors");
  }
  const auto named_step = step_of_name(fs::path(dir).filename().string());
  if (state.step < 0 || (named_step && *named_step != state.step)) {
    throw broken(dir, "holds step " + std::to_string(state.step) + " in its state.json");
  }
  if (state.torch_rng.size(0) != world_size) {
    throw coupling::CheckpointError("checkpoint " + dir + " was written by a job of " +
                                    std::to_string(state.torch_rng.size(0)) + " rank(s); resume it with " +
                                    std::to_string(state.torch_rng.size(0)) + " (this launch has " +
                                    std::to_string(world_size) + ")");
  }
  try {
    // Everything is read and checked before the model, the optimizer or the generator changes.
    const StagedCopies model_copies = stage_model(dir, safetensors("model.safetensors"), model);
    StagedOptimizerState optimizer_state = stage_optimizer(dir, safetensors("optimizer.safetensors"), model);
    commit(model_copies);
    commit_optimizer(optimizer_state, optimizer);
    // A fresh tensor: LibTorch 2.x reads a generator state from the start of its storage.
    default_generator().set_state(state.torch_rng.select(0, rank).clone());
  } catch (const coupling::DataError& e) {
    throw broken(dir, std::string("is malformed (") + e.what() + ")");
  } catch (const c10::Error& e) {
    throw broken(dir, std::string("is malformed (") + e.what_without_backtrace() + ")");
  }
  return state;
}

}  // namespace trainer
