// Reading and writing safetensors files (data only: no code is ever loaded from one).
//
// Checkpoints of the bundled trainers and Hugging Face model directories are read through
// SafetensorsFile: the file is memory-mapped (copy-on-write), and a tensor whose data is aligned
// for its type is a view onto the mapping, otherwise a copy. The header is checked before any
// tensor is made (coupling/formats/safetensors_header.h).
#pragma once

#include "coupling/formats/safetensors_header.h"

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace coupling::safetensors {

class SafetensorsFile {
 public:
  /// Maps and checks `path`. Throws coupling::DataError naming the file (missing, unreadable,
  /// truncated, a header that lies about offsets or sizes, an unknown dtype).
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return path_; }
  const Header& header() const { return header_; }
  bool contains(const std::string& name) const;
  /// The header entry of tensor `name` (dtype, shape), without reading its data. Throws
  /// coupling::DataError if there is none (naming the file).
  const TensorEntry& entry(const std::string& name) const;
  /// The tensor `name` on the CPU. Throws coupling::DataError if there is none (naming the file).
  at::Tensor tensor(const std::string& name) const;
  /// Every tensor, by name.
  std::map<std::string, at::Tensor> tensors() const;

  struct Mapping;

 private:
  std::string path_;
  std::shared_ptr<const Mapping> mapping_;
  Header header_;
  std::map<std::string, size_t> index_;  // name -> position in header_.tensors
};

/// The bytes of a safetensors file holding `tensors` (any device; copied to the CPU) and
/// `metadata`. Tensors are laid out widest type first, so each starts aligned for its type.
/// Throws coupling::DataError for a dtype safetensors has no name for here, or a repeated name.
std::string serialize(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace coupling::safetensors
