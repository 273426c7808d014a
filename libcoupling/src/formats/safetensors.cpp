#include "coupling/formats/safetensors.h"

#include "coupling/error.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace coupling::safetensors {

/// A private (copy-on-write) read mapping of a whole file; tensors that view it keep it alive.
struct SafetensorsFile::Mapping {
  unsigned char* bytes = nullptr;
  size_t size = 0;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  explicit Mapping(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block
    if (fd < 0) throw DataError("cannot open " + path + ": " + std::strerror(errno));
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      ::close(fd);
      throw DataError("cannot read " + path + ": not a regular file");
    }
    size = static_cast<size_t>(info.st_size);
    if (size > 0) {
      void* address = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (address == MAP_FAILED) {
        const int error = errno;
        ::close(fd);
        throw DataError("cannot map " + path + ": " + std::strerror(error));
      }
      bytes = static_cast<unsigned char*>(address);
    }
    ::close(fd);
  }
  ~Mapping() {
    if (bytes != nullptr) ::munmap(bytes, size);
  }
};

namespace {

at::ScalarType scalar_type(DType dtype) {
  switch (dtype) {
    case DType::kF64: return at::kDouble;
    case DType::kF32: return at::kFloat;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    case DType::kI64: return at::kLong;
    case DType::kI32: return at::kInt;
    case DType::kI16: return at::kShort;
    case DType::kI8: return at::kChar;
    case DType::kU8: return at::kByte;
    case DType::kBool: return at::kBool;
  }
  return at::kFloat;
}

DType dtype_of(at::ScalarType type, const std::string& name) {
  switch (type) {
    case at::kDouble: return DType::kF64;
    case at::kFloat: return DType::kF32;
    case at::kHalf: return DType::kF16;
    case at::kBFloat16: return DType::kBF16;
    case at::kLong: return DType::kI64;
    case at::kInt: return DType::kI32;
    case at::kShort: return DType::kI16;
    case at::kChar: return DType::kI8;
    case at::kByte: return DType::kU8;
    case at::kBool: return DType::kBool;
    default: throw DataError("tensor '" + name + "' has type " + std::string(c10::toString(type)) +
                             ", which libcoupling does not write to safetensors");
  }
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path)
    : path_(path), mapping_(std::make_shared<const Mapping>(path)),
      header_(parse_header(mapping_->bytes, mapping_->size, path)) {
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) != 0; }

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  const auto found = index_.find(name);
  if (found == index_.end()) throw DataError(path_ + " has no tensor '" + name + "'");
  return header_.tensors[found->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorEntry& entry = this->entry(name);
  unsigned char* data = mapping_->bytes + header_.data_start + entry.begin;
  const auto options = at::TensorOptions().dtype(scalar_type(entry.dtype));
  if (entry.dtype == DType::kBool) {
    for (uint64_t i = 0; i < entry.end - entry.begin; ++i) {
      if (data[i] > 1) throw DataError(path_ + ": BOOL tensor '" + name + "' holds a byte that is neither 0 nor 1");
    }
  }
  if (reinterpret_cast<uintptr_t>(data) % dtype_size(entry.dtype) == 0) {
    auto keep = mapping_;
    return at::from_blob(data, entry.shape, [keep](void*) {}, options);
  }
  at::Tensor copy = at::empty(entry.shape, options);
  std::memcpy(copy.data_ptr(), data, entry.end - entry.begin);
  return copy;
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
  std::stable_sort(laid_out.begin(), laid_out.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.first.dtype) > dtype_size(b.first.dtype);
  });
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
