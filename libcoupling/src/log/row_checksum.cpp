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

/// The rows of dataset `path` of `file` as bytes (int64 or float64, little-endian) and the bytes
/// per row.
std::pair<std::vector<unsigned char>, size_t> read_rows(hid_t file, const std::string& path, hsize_t rows) {
  Handle dataset(check(H5Dopen2(file, path.c_str(), H5P_DEFAULT), "opening " + path), H5Dclose);
  Handle type(check(H5Dget_type(dataset.get()), "type of " + path), H5Tclose);
  const hid_t memory = H5Tget_class(type.get()) == H5T_INTEGER ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
  Handle space(check(H5Dget_space(dataset.get()), "space of " + path), H5Sclose);
  std::vector<hsize_t> dims(static_cast<size_t>(H5Sget_simple_extent_ndims(space.get())));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  const size_t row_bytes = 8 * std::accumulate(dims.begin() + 1, dims.end(), size_t{1}, std::multiplies<>());
  std::vector<unsigned char> bytes(row_bytes * rows);
  if (rows > 0) {
    std::vector<hsize_t> start(dims.size(), 0), count = dims;
    count[0] = rows;
    check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
          "selecting rows of " + path);
    Handle memory_space(check(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), "row space"),
                        H5Sclose);
    check(H5Dread(dataset.get(), memory, memory_space.get(), space.get(), H5P_DEFAULT, bytes.data()),
          "reading " + path);
  }
  return {std::move(bytes), row_bytes};
}

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
  for (const auto& column : columns) {  // one dataset in memory at a time
    const auto [bytes, row_bytes] = read_rows(file, group + "/" + column, rows);
    for (hsize_t row = 0; row < rows; ++row) checksums[row].add(column, bytes.data() + row * row_bytes, row_bytes);
  }
  const auto [stored, row_bytes] = read_rows(file, checksum_path, rows);
  for (hsize_t row = 0; row < rows; ++row) {
    int64_t expected = 0;
    std::memcpy(&expected, stored.data() + row * row_bytes, sizeof expected);
    if (expected != checksums[row].value()) return row;
  }
  return std::nullopt;
}

}  // namespace coupling::hdf5
