#include "coupling/models/hf/directory.h"

#include "coupling/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace fs = std::filesystem;

namespace coupling::hf {
namespace {

using nlohmann::json;

constexpr const char* kConfig = "config.json";
constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";
/// config.json and the shard index are small; anything larger is not one.
constexpr uintmax_t kMaxJsonBytes = 64u << 20;

/// Whether `path` exists; a path that cannot even be examined (permissions, loops) is an error.
bool present(const fs::path& path) {
  std::error_code ec;
  const bool found = fs::exists(path, ec);
  if (ec) throw coupling::DataError("cannot examine " + path.string() + ": " + ec.message());
  return found;
}

std::string read_json_text(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec || !fs::is_regular_file(path, ec)) {
    throw coupling::DataError("cannot read " + path.string() + ": it is not a readable regular file");
  }
  if (size > kMaxJsonBytes) {
    throw coupling::DataError(fmt::format("{} has {} bytes, more than a JSON description of a model ({} at most)",
                                          path.string(), size, kMaxJsonBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw coupling::DataError("cannot open " + path.string() + ": check its permissions");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// Weights in a format this code does not read: named, with the command that converts them.
void refuse_other_formats(const fs::path& dir) {
  for (const char* other : {"pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack"}) {
    if (present(dir / other)) {
      // The converted copy keeps the directory's name (and so its step) under safetensors/.
      const fs::path converted = dir.parent_path() / "safetensors" / dir.filename();
      throw coupling::DataError(fmt::format(
          "{} holds its weights as {} (a Python pickle or another framework's file), which libcoupling never "
          "loads; convert it to safetensors once in the project's venv: .venv/bin/python -c \"from transformers "
          "import AutoModel; AutoModel.from_pretrained('{}').save_pretrained('{}')\"",
          dir.string(), other, dir.string(), converted.string()));
    }
  }
  throw coupling::DataError("no " + std::string(kSingleFile) + " or " + kIndex + " in " + dir.string() +
                            ": give a Hugging Face model directory saved with safetensors");
}

/// The shard file names of an index, checked: plain names in the directory, every tensor once.
std::map<std::string, std::string> read_index(const fs::path& index_path) {
  const json index = json::parse(read_json_text(index_path), nullptr, /*allow_exceptions=*/false);
  const std::string where = index_path.string();
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    throw coupling::DataError(where +
                              " is not a safetensors index: it needs a \"weight_map\" object of tensor names "
                              "to shard files");
  }
  std::map<std::string, std::string> shard_of;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) throw coupling::DataError(where + ": the shard of " + name + " is not a file name");
    const std::string file = shard.get<std::string>();
    if (file.empty() || file.find_first_of(std::string("/\0", 2)) != std::string::npos || file == "." || file == "..") {
      throw coupling::DataError(where + ": shard \"" + file + "\" of " + name +
                                " is not a file name in the model's directory");
    }
    shard_of.emplace(name, file);
  }
  if (shard_of.empty()) throw coupling::DataError(where + " lists no tensors");
  return shard_of;
}

}  // namespace

HfDirectory::HfDirectory(const std::string& dir) {
  // Without a trailing separator, so that the name (and the step in it) is the last component.
  fs::path root = fs::path(dir).lexically_normal();
  if (!root.has_filename()) root = root.parent_path();
  dir_ = root.string();
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw coupling::DataError("model directory " + dir + " is not a directory");
  const fs::path config_path = root / kConfig;
  if (!present(config_path)) {
    throw coupling::DataError("no config.json in " + dir +
                              ": give a Hugging Face model directory "
                              "(save_pretrained writes config.json beside the weights)");
  }
  config_ = parse_hf_config(read_json_text(config_path), config_path.string());
  using coupling::safetensors::SafetensorsFile;
  if (present(root / kSingleFile)) {
    files_.push_back(std::make_unique<SafetensorsFile>((root / kSingleFile).string()));
    for (const auto& entry : files_.back()->header().tensors) by_name_.emplace(entry.name, files_.back().get());
    return;
  }
  if (!present(root / kIndex)) refuse_other_formats(root);
  std::map<std::string, const SafetensorsFile*> shard_files;
  for (const auto& [name, shard] : read_index(root / kIndex)) {
    auto it = shard_files.find(shard);
    if (it == shard_files.end()) {
      if (!present(root / shard)) {
        throw coupling::DataError(fmt::format("{}: shard {} (listed for {}) is missing: download the whole model",
                                              (root / kIndex).string(), shard, name));
      }
      files_.push_back(std::make_unique<SafetensorsFile>((root / shard).string()));
      it = shard_files.emplace(shard, files_.back().get()).first;
    }
    if (!it->second->contains(name)) {
      throw coupling::DataError(
          fmt::format("{}: {} is listed in shard {}, which does not hold it", (root / kIndex).string(), name, shard));
    }
    by_name_.emplace(name, it->second);
  }
}

std::vector<std::string> HfDirectory::names() const {
  std::vector<std::string> names;
  for (const auto& [name, file] : by_name_) names.push_back(name);
  return names;
}

std::pair<std::string, const coupling::safetensors::SafetensorsFile*> HfDirectory::find(
    const std::string& name, const std::vector<int64_t>& shape) const {
  auto it = by_name_.find(name);
  // Old BERT checkpoints name LayerNorm parameters gamma and beta (transformers renames them too).
  for (const auto& [modern, legacy] : {std::pair<std::string, std::string>{".weight", ".gamma"}, {".bias", ".beta"}}) {
    if (it == by_name_.end() && name.find("LayerNorm") != std::string::npos && name.size() > modern.size() &&
        name.compare(name.size() - modern.size(), modern.size(), modern) == 0) {
      it = by_name_.find(name.substr(0, name.size() - modern.size()) + legacy);
    }
  }
  if (it == by_name_.end()) {
    throw coupling::DataError(
        fmt::format("{} lacks tensor {}, which its config.json ({}) needs: is the download "
                    "complete?",
                    dir_, name, config_.model_type));
  }
  const auto& entry = it->second->entry(it->first);
  using coupling::safetensors::DType;
  if (entry.dtype != DType::kF64 && entry.dtype != DType::kF32 && entry.dtype != DType::kF16 &&
      entry.dtype != DType::kBF16) {
    throw coupling::DataError(
        fmt::format("{}: tensor {} has dtype {}, not a floating-point type: quantized or "
                    "integer weights are not read here",
                    dir_, it->first, coupling::safetensors::dtype_name(entry.dtype)));
  }
  if (entry.shape != shape) {
    throw coupling::DataError(fmt::format("{}: tensor {} has shape [{}] and config.json implies [{}]", dir_, it->first,
                                          fmt::join(entry.shape, ", "), fmt::join(shape, ", ")));
  }
  return {it->first, it->second};
}

void HfDirectory::check(const std::string& name, const std::vector<int64_t>& shape) const { find(name, shape); }

at::Tensor HfDirectory::tensor(const std::string& name, const std::vector<int64_t>& shape) const {
  const auto [stored, file] = find(name, shape);
  return file->tensor(stored);
}

at::Tensor HfDirectory::rows(const std::string& name, const std::vector<int64_t>& shape,
                             const std::vector<int64_t>& rows) const {
  const auto [stored, file] = find(name, shape);
  return file->rows(stored, rows);
}

}  // namespace coupling::hf
