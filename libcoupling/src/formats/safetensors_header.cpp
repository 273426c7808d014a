#include "coupling/formats/safetensors_header.h"

#include "coupling/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <limits>
#include <tuple>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; so must the host be");

namespace coupling::safetensors {
namespace {

using nlohmann::json;

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr std::array<DTypeInfo, 10> kDTypes{{{DType::kF64, "F64", 8},
                                             {DType::kF32, "F32", 4},
                                             {DType::kF16, "F16", 2},
                                             {DType::kBF16, "BF16", 2},
                                             {DType::kI64, "I64", 8},
                                             {DType::kI32, "I32", 4},
                                             {DType::kI16, "I16", 2},
                                             {DType::kI8, "I8", 1},
                                             {DType::kU8, "U8", 1},
                                             {DType::kBool, "BOOL", 1}}};

/// Far more elements than any real tensor, and far inside int64 for the strides.
constexpr uint64_t kMaxElements = uint64_t{1} << 48;
/// A header is a flat object of objects: {"name": {"shape": [...]}} is three levels deep.
constexpr int kMaxNesting = 3;

/// Whether the JSON text nests arrays and objects deeper than kMaxNesting: checked before parsing,
/// so a header of 100 MB of "[[[[" is refused without building its values.
bool nests_too_deep(const unsigned char* text, size_t size) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < size; ++i) {
    const unsigned char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNesting) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

const DTypeInfo& info(DType dtype) {
  return *std::find_if(kDTypes.begin(), kDTypes.end(), [&](const DTypeInfo& d) { return d.dtype == dtype; });
}

std::string known_dtypes() {
  std::string names;
  for (const auto& d : kDTypes) names += (names.empty() ? "" : ", ") + std::string(d.name);
  return names;
}

/// A non-negative integer of the header, or an error naming `what`.
uint64_t unsigned_value(const json& value, const std::string& what, const std::string& file) {
  if (!value.is_number_unsigned()) {
    throw DataError(file + " is not a valid safetensors file: " + what + " is not a non-negative integer");
  }
  return value.get<uint64_t>();
}

TensorEntry parse_entry(const std::string& name, const json& value, const std::string& file) {
  const std::string where = "tensor '" + name + "'";
  if (!value.is_object()) throw DataError(file + " is not a valid safetensors file: " + where + " is not an object");
  for (const auto& item : value.items()) {
    if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets") {
      throw DataError(file + " is not a valid safetensors file: " + where + " has an unknown field '" + item.key() +
                      "'");
    }
  }
  TensorEntry entry;
  entry.name = name;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) {
    throw DataError(file + " is not a valid safetensors file: " + where + " has no dtype");
  }
  const auto found = std::find_if(kDTypes.begin(), kDTypes.end(),
                                  [&](const DTypeInfo& d) { return dtype->get_ref<const std::string&>() == d.name; });
  if (found == kDTypes.end()) {
    throw DataError(file + ": " + where + " has dtype " + dtype->get<std::string>() +
                    ", which libcoupling does not read (it reads " + known_dtypes() + ")");
  }
  entry.dtype = found->dtype;

  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) {
    throw DataError(file + " is not a valid safetensors file: " + where + " has no shape");
  }
  // The byte count, and the strides' span (zeros aside: a zero size must not hide huge others,
  // which would overflow the strides of the tensor made from it).
  uint64_t bytes = found->size, span = 1;
  for (const auto& extent : *shape) {
    const uint64_t n = unsigned_value(extent, where + "'s shape", file);
    if (__builtin_mul_overflow(bytes, n, &bytes) || __builtin_mul_overflow(span, std::max<uint64_t>(n, 1), &span) ||
        span > kMaxElements) {
      throw DataError(file + " is not a valid safetensors file: " + where + "'s shape is too large");
    }
    entry.shape.push_back(static_cast<int64_t>(n));
  }

  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2) {
    throw DataError(file + " is not a valid safetensors file: " + where + " has no data_offsets [begin, end]");
  }
  entry.begin = unsigned_value((*offsets)[0], where + "'s data_offsets", file);
  entry.end = unsigned_value((*offsets)[1], where + "'s data_offsets", file);
  if (entry.end < entry.begin || entry.end - entry.begin != bytes) {
    throw DataError(file + " is not a valid safetensors file: " + where + " has data_offsets [" +
                    std::to_string(entry.begin) + ", " + std::to_string(entry.end) + "] but its shape and dtype need " +
                    std::to_string(bytes) + " bytes");
  }
  return entry;
}

}  // namespace

const char* dtype_name(DType dtype) { return info(dtype).name; }
size_t dtype_size(DType dtype) { return info(dtype).size; }

Header parse_header(const unsigned char* bytes, size_t size, const std::string& file) {
  if (size < 8)
    throw DataError(file + " is not a valid safetensors file: it is " + std::to_string(size) + " bytes long");
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | bytes[i];
  if (length > kMaxHeaderBytes || length > size - 8) {
    throw DataError(file + " is not a valid safetensors file (or is truncated): its header length " +
                    std::to_string(length) + " exceeds the file's " + std::to_string(size - 8) + " remaining bytes" +
                    (length > kMaxHeaderBytes ? " or the 100 MB limit" : ""));
  }
  if (nests_too_deep(bytes + 8, length)) {
    throw DataError(file + " is not a valid safetensors file: its header nests deeper than a tensor table");
  }
  const json object = json::parse(bytes + 8, bytes + 8 + length, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    throw DataError(file + " is not a valid safetensors file: its header is not a JSON object");
  }

  Header header;
  header.data_start = 8 + length;
  for (const auto& item : object.items()) {
    if (item.key() != "__metadata__") {
      header.tensors.push_back(parse_entry(item.key(), item.value(), file));
      continue;
    }
    if (!item.value().is_object())
      throw DataError(file + " is not a valid safetensors file: __metadata__ is not an object");
    for (const auto& entry : item.value().items()) {
      if (!entry.value().is_string()) {
        throw DataError(file + " is not a valid safetensors file: __metadata__ '" + entry.key() + "' is not a string");
      }
      header.metadata[entry.key()] = entry.value().get<std::string>();
    }
  }

  // The data must be covered exactly: each tensor starts where the previous one ended.
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t covered = 0;
  for (const auto& entry : header.tensors) {
    if (entry.begin != covered) {
      throw DataError(file + " is not a valid safetensors file: tensor '" + entry.name + "' starts at byte " +
                      std::to_string(entry.begin) + " of the data, where " + std::to_string(covered) +
                      " was expected (a gap or an overlap)");
    }
    covered = entry.end;
  }
  const uint64_t data_bytes = size - header.data_start;
  if (covered != data_bytes) {
    throw DataError(file + (covered > data_bytes ? " is truncated" : " is not a valid safetensors file") +
                    ": its tensors need " + std::to_string(covered) + " bytes of data and it holds " +
                    std::to_string(data_bytes));
  }
  return header;
}

std::string header_text(const std::vector<TensorEntry>& tensors, const std::map<std::string, std::string>& metadata) {
  json object = json::object();
  if (!metadata.empty()) object["__metadata__"] = metadata;
  for (const auto& entry : tensors) {
    object[entry.name] = {
        {"dtype", dtype_name(entry.dtype)}, {"shape", entry.shape}, {"data_offsets", {entry.begin, entry.end}}};
  }
  std::string text = object.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the length prefix is 8 bytes: data starts aligned
  return text;
}

}  // namespace coupling::safetensors
