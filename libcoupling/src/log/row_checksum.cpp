#include "row_checksum.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <numeric>

namespace coupling::hdf5 {
namespace {

uint32_t crc32_of(const void* bytes, size_t size, uint32_t crc = 0) {
  const auto* data = static_cast<const Bytef*>(bytes);
  while (size > 0) {  // zlib takes at most 4 GiB at a time
    const auto chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = static_cast<uint32_t>(::crc32(crc, data, chunk));
    data += chunk;
    size -= chunk;
  }
  return crc;
}

/// Reads a row dataset in blocks of rows, as bytes (int64 or float64, little-endian).
class RowReader {
 public:
  RowReader(hid_t file, const std::string& path)
      : path_(path), dataset_(check(H5Dopen2(file, path.c_str(), H5P_DEFAULT), "opening " + path), H5Dclose) {
    Handle type(check(H5Dget_type(dataset_.get()), "type of " + path), H5Tclose);
    memory_type_ = H5Tget_class(type.get()) == H5T_INTEGER ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
    Handle space(check(H5Dget_space(dataset_.get()), "space of " + path), H5Sclose);
    dims_.resize(static_cast<size_t>(H5Sget_simple_extent_ndims(space.get())));
    H5Sget_simple_extent_dims(space.get(), dims_.data(), nullptr);
    row_bytes_ = 8 * std::accumulate(dims_.begin() + 1, dims_.end(), size_t{1}, std::multiplies<>());
  }
  size_t row_bytes() const { return row_bytes_; }

  /// Rows [first, first + count), row after row.
  std::vector<unsigned char> read(hsize_t first, hsize_t count) const {
    std::vector<unsigned char> bytes(row_bytes_ * count);
    if (count == 0) return bytes;
    Handle space(check(H5Dget_space(dataset_.get()), "space of " + path_), H5Sclose);
    std::vector<hsize_t> start(dims_.size(), 0), extent = dims_;
    start[0] = first;
    extent[0] = count;
    check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr),
          "selecting rows of " + path_);
    Handle memory(check(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), "row space"),
                  H5Sclose);
    check(H5Dread(dataset_.get(), memory_type_, memory.get(), space.get(), H5P_DEFAULT, bytes.data()),
          "reading " + path_);
    return bytes;
  }

 private:
  std::string path_;
  Handle dataset_;
  hid_t memory_type_ = H5T_NATIVE_DOUBLE;
  std::vector<hsize_t> dims_;
  size_t row_bytes_ = 0;
};

/// Rows read at a time: a log's rows can be large (up to --max-row-mib each), its columns larger.
constexpr size_t kBlockBytes = size_t{64} << 20;

}  // namespace

void RowChecksum::add(const std::string& name, const void* bytes, size_t size) {
  parts_[name] = crc32_of(bytes, size);
}

int64_t RowChecksum::value() const {
  uint32_t crc = 0;
  for (const auto& [name, part] : parts_) {
    const std::string entry = name + ":" + std::to_string(part) + ";";
    crc = crc32_of(entry.data(), entry.size(), crc);
  }
  return crc;
}

std::optional<hsize_t> first_damaged_row(hid_t file, const std::string& group, const std::vector<std::string>& columns,
                                         hsize_t rows) {
  const std::string checksum_path = group + "/" + kRowChecksumColumn;
  if (rows == 0 || H5Lexists(file, checksum_path.c_str(), H5P_DEFAULT) <= 0) return std::nullopt;
  std::vector<RowChecksum> checksums(rows);
  for (const auto& column : columns) {  // one block of one dataset in memory at a time
    const RowReader reader(file, group + "/" + column);
    const hsize_t block = std::max<hsize_t>(1, kBlockBytes / std::max<size_t>(reader.row_bytes(), 1));
    for (hsize_t first = 0; first < rows; first += block) {
      const hsize_t count = std::min(block, rows - first);
      const auto bytes = reader.read(first, count);
      for (hsize_t row = 0; row < count; ++row) {
        checksums[first + row].add(column, bytes.data() + row * reader.row_bytes(), reader.row_bytes());
      }
    }
  }
  const RowReader stored(file, checksum_path);
  const auto values = stored.read(0, rows);
  for (hsize_t row = 0; row < rows; ++row) {
    int64_t expected = 0;
    std::memcpy(&expected, values.data() + row * stored.row_bytes(), sizeof expected);
    if (expected != checksums[row].value()) return row;
  }
  return std::nullopt;
}

}  // namespace coupling::hdf5
