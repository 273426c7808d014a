#include "coupling/formats/safetensors.h"

#include "coupling/error.h"
#include "internal/positioned_io.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace coupling::safetensors {

/// The open file (or the bytes read from one), for the object's lifetime: every tensor comes from
/// the file that was checked.
struct SafetensorsFile::Descriptor {
  int fd = -1;
  uint64_t size = 0;
  std::shared_ptr<const std::string> bytes;  ///< set when the file was read into memory
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  explicit Descriptor(std::shared_ptr<const std::string> in_memory)
      : size(in_memory->size()), bytes(std::move(in_memory)) {}
  explicit Descriptor(const std::string& path) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block
    if (fd < 0) throw DataError("cannot open " + path + ": " + std::strerror(errno));
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      ::close(fd);
      throw DataError("cannot read " + path + ": not a regular file");
    }
    size = static_cast<uint64_t>(info.st_size);
  }
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
  /// Reads up to `count` bytes at `offset`; returns how many it read (fewer only at the end of the file).
  uint64_t read(uint64_t offset, uint64_t count, unsigned char* into, const std::string& path) const {
    if (bytes) {
      const uint64_t got = offset >= size ? 0 : std::min(count, size - offset);
      std::memcpy(into, bytes->data() + offset, got);
      return got;
    }
    const int64_t got = detail::pread_fully(fd, into, count, offset);
    if (got < 0) throw DataError("cannot read " + path + ": " + std::strerror(errno));
    return static_cast<uint64_t>(got);
  }
};

namespace {

at::ScalarType scalar_type(DType dtype) {
  switch (dtype) {
    case DType::kF64:
      return at::kDouble;
    case DType::kF32:
      return at::kFloat;
    case DType::kF16:
      return at::kHalf;
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kI64:
      return at::kLong;
    case DType::kI32:
      return at::kInt;
    case DType::kI16:
      return at::kShort;
    case DType::kI8:
      return at::kChar;
    case DType::kU8:
      return at::kByte;
    case DType::kBool:
      return at::kBool;
  }
  return at::kFloat;
}

DType dtype_of(at::ScalarType type, const std::string& name) {
  switch (type) {
    case at::kDouble:
      return DType::kF64;
    case at::kFloat:
      return DType::kF32;
    case at::kHalf:
      return DType::kF16;
    case at::kBFloat16:
      return DType::kBF16;
    case at::kLong:
      return DType::kI64;
    case at::kInt:
      return DType::kI32;
    case at::kShort:
      return DType::kI16;
    case at::kChar:
      return DType::kI8;
    case at::kByte:
      return DType::kU8;
    case at::kBool:
      return DType::kBool;
    default:
      throw DataError("tensor '" + name + "' has type " + std::string(c10::toString(type)) +
                      ", which libcoupling does not write to safetensors");
  }
}

/// The bytes parse_header needs: the length prefix and, when it fits the file, the header.
std::vector<unsigned char> header_bytes(const SafetensorsFile::Descriptor& file, const std::string& path) {
  std::vector<unsigned char> bytes(std::min<uint64_t>(8, file.size));
  file.read(0, bytes.size(), bytes.data(), path);
  if (bytes.size() < 8) return bytes;
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | bytes[i];
  if (length <= kMaxHeaderBytes && length <= file.size - 8) {
    bytes.resize(8 + length);
    if (file.read(8, length, bytes.data() + 8, path) != length) {
      throw DataError(path + " is truncated: it has shrunk since it was opened (is something rewriting it?)");
    }
  }
  return bytes;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path)
    : SafetensorsFile(path, std::make_shared<const Descriptor>(path)) {}

SafetensorsFile::SafetensorsFile(const std::string& path, std::shared_ptr<const std::string> bytes)
    : SafetensorsFile(path, std::make_shared<const Descriptor>(std::move(bytes))) {}

SafetensorsFile::SafetensorsFile(const std::string& path, std::shared_ptr<const Descriptor> descriptor)
    : path_(path), descriptor_(std::move(descriptor)) {
  const auto bytes = header_bytes(*descriptor_, path);
  header_ = parse_header(bytes.data(), bytes.size() < 8 ? bytes.size() : descriptor_->size, path);
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

void SafetensorsFile::read_data(uint64_t offset, uint64_t count, void* into) const {
  if (descriptor_->read(header_.data_start + offset, count, static_cast<unsigned char*>(into), path_) != count) {
    throw DataError(path_ + " is truncated: it has shrunk since it was opened (is something rewriting it?)");
  }
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) != 0; }

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  const auto found = index_.find(name);
  if (found == index_.end()) throw DataError(path_ + " has no tensor '" + name + "'");
  return header_.tensors[found->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorEntry& entry = this->entry(name);
  at::Tensor tensor = at::empty(entry.shape, at::TensorOptions().dtype(scalar_type(entry.dtype)));
  read_data(entry.begin, entry.end - entry.begin, tensor.data_ptr());
  if (entry.dtype == DType::kBool) {
    const auto* data = static_cast<const unsigned char*>(tensor.data_ptr());
    for (uint64_t i = 0; i < entry.end - entry.begin; ++i) {
      if (data[i] > 1) throw DataError(path_ + ": BOOL tensor '" + name + "' holds a byte that is neither 0 nor 1");
    }
  }
  return tensor;
}

at::Tensor SafetensorsFile::rows(const std::string& name, const std::vector<int64_t>& rows) const {
  const TensorEntry& entry = this->entry(name);
  if (entry.shape.size() != 2 || entry.dtype == DType::kBool) {
    throw DataError(path_ + ": tensor '" + name + "' is not a matrix of numbers, so it has no rows to read");
  }
  const uint64_t row_bytes = static_cast<uint64_t>(entry.shape[1]) * dtype_size(entry.dtype);
  at::Tensor result = at::empty({static_cast<int64_t>(rows.size()), entry.shape[1]},
                                at::TensorOptions().dtype(scalar_type(entry.dtype)));
  auto* into = static_cast<unsigned char*>(result.data_ptr());
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= entry.shape[0]) {
      throw DataError(path_ + ": row " + std::to_string(rows[i]) + " of tensor '" + name + "' is outside its " +
                      std::to_string(entry.shape[0]) + " rows");
    }
    read_data(entry.begin + static_cast<uint64_t>(rows[i]) * row_bytes, row_bytes, into + i * row_bytes);
  }
  return result;
}

std::map<std::string, at::Tensor> SafetensorsFile::tensors() const {
  std::map<std::string, at::Tensor> all;
  for (const auto& entry : header_.tensors) all[entry.name] = tensor(entry.name);
  return all;
}

std::string serialize(const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<TensorEntry, at::Tensor>> laid_out;
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    if (!names.insert(name).second || name == "__metadata__") {
      throw DataError("cannot write tensor '" + name + "' to safetensors: the name is taken");
    }
    TensorEntry entry;
    entry.name = name;
    entry.dtype = dtype_of(tensor.scalar_type(), name);
    entry.shape = tensor.sizes().vec();
    laid_out.emplace_back(std::move(entry), tensor.detach().to(at::kCPU).contiguous());
  }
  // Widest type first: every tensor then starts at a multiple of its element size.
  std::stable_sort(laid_out.begin(), laid_out.end(),
                   [](const auto& a, const auto& b) { return dtype_size(a.first.dtype) > dtype_size(b.first.dtype); });
  uint64_t offset = 0;
  std::vector<TensorEntry> entries;
  for (auto& [entry, tensor] : laid_out) {
    entry.begin = offset;
    offset += tensor.numel() * dtype_size(entry.dtype);
    entry.end = offset;
    entries.push_back(entry);
  }
  const std::string header = header_text(entries, metadata);
  std::string bytes(8 + header.size() + offset, '\0');
  uint64_t length = header.size();
  for (int i = 0; i < 8; ++i, length >>= 8) bytes[i] = static_cast<char>(length & 0xff);
  std::memcpy(&bytes[8], header.data(), header.size());
  for (const auto& [entry, tensor] : laid_out) {
    if (entry.end > entry.begin) {
      std::memcpy(&bytes[8 + header.size() + entry.begin], tensor.data_ptr(), entry.end - entry.begin);
    }
  }
  return bytes;
}

}  // namespace coupling::safetensors
