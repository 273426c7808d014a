// Reading and writing safetensors files (data only: no code is ever loaded from one).
//
// Checkpoints of the bundled trainers and Hugging Face model directories are read through
// SafetensorsFile: the header is checked when the file is opened (coupling/formats/
// safetensors_header.h), and each tensor is read with pread into memory of its own, never mapped.
// So a model far larger than memory can be read a part at a time: what was read and released
// leaves no file pages in the process's resident set.
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
  /// Opens `path` and checks its header. Throws coupling::DataError naming the file (missing,
  /// unreadable, truncated, a header that lies about offsets or sizes, an unknown dtype).
  explicit SafetensorsFile(const std::string& path);
  /// The safetensors file whose bytes are `bytes` (a checkpoint file read once and verified
  /// against its manifest, so what is parsed is what was hashed); `path` names it in errors.
  SafetensorsFile(const std::string& path, std::shared_ptr<const std::string> bytes);

  const std::string& path() const { return path_; }
  const Header& header() const { return header_; }
  bool contains(const std::string& name) const;
  /// The header entry of tensor `name` (dtype, shape), without reading its data. Throws
  /// coupling::DataError if there is none (naming the file).
  const TensorEntry& entry(const std::string& name) const;
  /// The tensor `name` on the CPU. Throws coupling::DataError if there is none, or if the file
  /// has shrunk since it was opened (naming the file).
  at::Tensor tensor(const std::string& name) const;
  /// Rows `rows` of the matrix `name` ([rows.size(), columns]), reading those rows only (an
  /// embedding's probe tokens, say). Throws coupling::DataError as tensor() does, for a tensor
  /// that is not 2-D, or a row out of range.
  at::Tensor rows(const std::string& name, const std::vector<int64_t>& rows) const;
  /// Every tensor, by name.
  std::map<std::string, at::Tensor> tensors() const;

  struct Descriptor;

 private:
  SafetensorsFile(const std::string& path, std::shared_ptr<const Descriptor> descriptor);
  /// Reads `count` bytes at data offset `offset` into `into`; a short read is a DataError.
  void read_data(uint64_t offset, uint64_t count, void* into) const;

  std::string path_;
  std::shared_ptr<const Descriptor> descriptor_;
  Header header_;
  std::map<std::string, size_t> index_;  // name -> position in header_.tensors
};

/// The bytes of a safetensors file holding `tensors` (any device; copied to the CPU) and
/// `metadata`. Tensors are laid out widest type first, so each starts aligned for its type.
/// Throws coupling::DataError for a dtype safetensors has no name for here, or a repeated name.
std::string serialize(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace coupling::safetensors
