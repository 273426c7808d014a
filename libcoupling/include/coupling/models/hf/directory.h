// A Hugging Face model directory read as data: config.json and the weights in safetensors, one
// file (model.safetensors) or shards listed by model.safetensors.index.json. Nothing here
// unpickles: a directory with only pytorch_model.bin is refused with the command that converts it.
#pragma once

#include "coupling/formats/safetensors.h"
#include "coupling/models/hf/config.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace coupling::hf {

class HfDirectory {
 public:
  /// Reads DIR/config.json and opens the safetensors files (their headers are read and checked). Throws
  /// coupling::ConfigError (the family or an option), coupling::DataError (a missing, truncated or lying file, an index
  /// naming a missing shard or a tensor its shard lacks).
  explicit HfDirectory(const std::string& dir);

  /// The directory, normalised and without a trailing separator (its last component is its name).
  const std::string& dir() const { return dir_; }
  const HfConfig& config() const { return config_; }
  /// Every tensor name in the checkpoint.
  std::vector<std::string> names() const;
  /// The tensor `name` (on the CPU, in the file's dtype), which must have `shape` and a
  /// floating-point dtype. A LayerNorm's `weight`/`bias` may be stored as `gamma`/`beta`. Throws
  /// coupling::DataError naming the directory, the tensor and what is wrong.
  at::Tensor tensor(const std::string& name, const std::vector<int64_t>& shape) const;
  /// Rows `rows` of the matrix `name` of `shape` (an embedding's probe tokens), reading only those
  /// rows; checked and named as tensor() says.
  at::Tensor rows(const std::string& name, const std::vector<int64_t>& shape, const std::vector<int64_t>& rows) const;
  /// The checks of tensor() from the headers alone, without reading any data.
  void check(const std::string& name, const std::vector<int64_t>& shape) const;

 private:
  /// The stored name of `name` and its file, checked as tensor() says.
  std::pair<std::string, const coupling::safetensors::SafetensorsFile*> find(const std::string& name,
                                                                             const std::vector<int64_t>& shape) const;

  std::string dir_;
  HfConfig config_;
  std::vector<std::unique_ptr<coupling::safetensors::SafetensorsFile>> files_;
  std::map<std::string, const coupling::safetensors::SafetensorsFile*> by_name_;
};

}  // namespace coupling::hf
