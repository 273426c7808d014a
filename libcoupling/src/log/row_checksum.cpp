#include "row_checksum.h"

#include <zlib.h>

#include <algorithm>
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

/// A row dataset opened to read its rows as the checksum sees them: int64 or float64 (the memory
/// types are little-endian here), 8 bytes a value.
GrowingDataset open_as_stored(hid_t file, const std::string& path) {
  Handle dataset(check(H5Dopen2(file, path.c_str(), H5P_DEFAULT), "opening " + path), H5Dclose);
  Handle type(check(H5Dget_type(dataset.get()), "type of " + path), H5Tclose);
  return GrowingDataset::open(file, path,
                              H5Tget_class(type.get()) == H5T_INTEGER ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE);
}

size_t row_bytes(const GrowingDataset& dataset) {
  return 8 * std::accumulate(dataset.item().begin(), dataset.item().end(), size_t{1}, std::multiplies<>());
}

/// Rows read at a time: a log's rows can be large (up to --max-row-mib each), its columns larger.
constexpr size_t kBlockBytes = size_t{64} << 20;

}  // namespace

void RowChecksum::add(const std::string& name, const void* bytes, size_t size) { parts_[name] = crc32_of(bytes, size); }

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
    const GrowingDataset dataset = open_as_stored(file, group + "/" + column);
    const size_t bytes_per_row = row_bytes(dataset);
    const hsize_t block = std::max<hsize_t>(1, kBlockBytes / std::max<size_t>(bytes_per_row, 1));
    std::vector<unsigned char> bytes;
    for (hsize_t first = 0; first < rows; first += block) {
      const hsize_t count = std::min(block, rows - first);
      bytes.resize(count * bytes_per_row);
      dataset.read(first, count, bytes.data());
      for (hsize_t row = 0; row < count; ++row) {
        checksums[first + row].add(column, bytes.data() + row * bytes_per_row, bytes_per_row);
      }
    }
  }
  std::vector<int64_t> stored(rows);
  GrowingDataset::open(file, checksum_path, H5T_NATIVE_INT64).read(0, rows, stored.data());
  for (hsize_t row = 0; row < rows; ++row) {
    if (stored[row] != checksums[row].value()) return row;
  }
  return std::nullopt;
}

}  // namespace coupling::hdf5
