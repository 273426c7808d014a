// The header of a safetensors file (the data-only tensor format of Hugging Face): parsed and
// checked without LibTorch, so the parser of outside bytes can be fuzzed on its own.
//
// A file is: an 8-byte little-endian header length N, N bytes of a JSON object, then the data.
// The object maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// into the data, which the tensors must cover exactly, without gaps or overlaps), plus an
// optional "__metadata__" object of strings. coupling/formats/safetensors.h reads and writes
// tensors on top of this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace coupling::safetensors {

/// The element types this library reads and writes (the safetensors names are dtype_name()).
enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

/// "F32", "BF16", ... as written in a header.
const char* dtype_name(DType dtype);
/// Bytes per element.
size_t dtype_size(DType dtype);

/// One tensor of a header; offsets are relative to the start of the data.
struct TensorEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct Header {
  std::vector<TensorEntry> tensors;             ///< in the order of their data
  std::map<std::string, std::string> metadata;  ///< "__metadata__"
  uint64_t data_start = 0;                      ///< file offset of the data: 8 + header length
};

/// The largest header accepted (as the reference implementation: 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

/// Parses and checks the header of a safetensors file of `size` bytes: the length, the JSON, each
/// entry's dtype, shape and offsets, that the byte count of every tensor is its shape's, and that
/// the tensors cover the data exactly. `bytes` holds the file's first 8 bytes and, when their
/// length fits the file and the 100 MB limit, the whole header after them (the data is never
/// read). Throws coupling::DataError naming `file` and what is wrong.
Header parse_header(const unsigned char* bytes, size_t size, const std::string& file);

/// The JSON header text (without the length prefix) for `tensors` and `metadata`, padded with
/// spaces so that the data starts at a multiple of 8 bytes.
std::string header_text(const std::vector<TensorEntry>& tensors, const std::map<std::string, std::string>& metadata);

}  // namespace coupling::safetensors
