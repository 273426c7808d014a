#include "trainer/models/hf/hf_directory.h"

#include "coupling/error.h"

#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

namespace fs = std::filesystem;

namespace trainer::hf {
namespace {

using nlohmann::json;

constexpr const char* kConfig = "config.json";
constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";
/// config.json and the shard index are small; anything larger is not one.
constexpr uintmax_t kMaxJsonBytes = 64u << 20;

std::string read_json_text(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec || !fs::is_regular_file(path)) throw coupling::DataError("cannot read " + path.string() + ": it is not a regular file");
  if (size > kMaxJsonBytes) {
    throw coupling::DataError(fmt::format("{} has {} bytes, more than a JSON description of a model ({} at most)",
                                          path.string(), size, kMaxJsonBytes));
  }
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw coupling::DataError("cannot read " + path.string());
  return text;
}

/// Weights in a format this code does not read: named, with the command that converts them.
void refuse_other_formats(const fs::path& dir) {
  for (const char* other : {"pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack"}) {
    if (fs::exists(dir / other)) {
      throw coupling::DataError(fmt::format(
          "{} holds its weights as {} (a Python pickle or another framework's file), which coupling-analyze never "
          "loads; convert it to safetensors once in the project's venv: .venv/bin/python -c \"from transformers "
          "import AutoModel; AutoModel.from_pretrained('{}').save_pretrained('{}-safetensors')\"",
          dir.string(), other, dir.string(), dir.string()));
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
    throw coupling::DataError(where + " is not a safetensors index: it needs a \"weight_map\" object of tensor names "
                              "to shard files");
  }
  std::map<std::string, std::string> shard_of;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) throw coupling::DataError(where + ": the shard of " + name + " is not a file name");
    const std::string file = shard.get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
      throw coupling::DataError(where + ": shard \"" + file + "\" of " + name +
                                " is not a file name in the model's directory");
    }
    shard_of.emplace(name, file);
  }
  if (shard_of.empty()) throw coupling::DataError(where + " lists no tensors");
  return shard_of;
}

}  // namespace

HfDirectory::HfDirectory(const std::string& dir) : dir_(dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw coupling::DataError("--hf " + dir + " is not a directory");
  const fs::path config_path = root / kConfig;
  if (!fs::exists(config_path)) {
    throw coupling::DataError("no config.json in " + dir + ": give a Hugging Face model directory "
                              "(save_pretrained writes config.json beside the weights)");
  }
  config_ = parse_hf_config(read_json_text(config_path), config_path.string());
  using coupling::safetensors::SafetensorsFile;
  if (fs::exists(root / kSingleFile)) {
    files_.push_back(std::make_unique<SafetensorsFile>((root / kSingleFile).string()));
    for (const auto& entry : files_.back()->header().tensors) by_name_.emplace(entry.name, files_.back().get());
    return;
  }
  if (!fs::exists(root / kIndex)) refuse_other_formats(root);
  std::map<std::string, const SafetensorsFile*> shard_files;
  for (const auto& [name, shard] : read_index(root / kIndex)) {
    auto it = shard_files.find(shard);
    if (it == shard_files.end()) {
      if (!fs::exists(root / shard)) {
        throw coupling::DataError(fmt::format("{}: shard {} (listed for {}) is missing: download the whole model",
                                              (root / kIndex).string(), shard, name));
      }
      files_.push_back(std::make_unique<SafetensorsFile>((root / shard).string()));
      it = shard_files.emplace(shard, files_.back().get()).first;
    }
    if (!it->second->contains(name)) {
      throw coupling::DataError(fmt::format("{}: {} is listed in shard {}, which does not hold it",
                                            (root / kIndex).string(), name, shard));
    }
    by_name_.emplace(name, it->second);
  }
}

std::vector<std::string> HfDirectory::names() const {
  std::vector<std::string> names;
  for (const auto& [name, file] : by_name_) names.push_back(name);
  return names;
}

at::Tensor HfDirectory::tensor(const std::string& name, const std::vector<int64_t>& shape) const {
  const auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    throw coupling::DataError(fmt::format("{} lacks tensor {}, which its config.json ({}) needs: is the download "
                                          "complete?",
                                          dir_, name, config_.model_type));
  }
  auto value = it->second->tensor(name);
  if (value.sizes().vec() != shape) {
    throw coupling::DataError(fmt::format("{}: tensor {} has shape [{}] and config.json implies [{}]", dir_, name,
                                          fmt::join(value.sizes(), ", "), fmt::join(shape, ", ")));
  }
  return value;
}

}  // namespace trainer::hf
