// A checksum per row of the log's groups (/measurement, /train, /eval), in a `row_crc32` column:
// the CRC-32 (zlib's) of "NAME:CRC;" for every other dataset of the group in name order, where
// CRC is the CRC-32 of that dataset's row as stored (little-endian int64 or float64). A row torn
// across datasets, or a value changed after it was written, no longer matches. Fletcher32 could
// not see either: it is per chunk of up to ~1000 rows and per dataset.
// scripts/coupling_log.py computes the same in Python; resume checks every row it keeps.
#pragma once

#include "hdf5_handles.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace coupling::hdf5 {

/// The column's name in each group.
constexpr const char* kRowChecksumColumn = "row_crc32";

/// The checksum of one row, built from its datasets' values in any order.
class RowChecksum {
 public:
  /// Adds dataset `name`'s row: `size` bytes at `bytes`.
  void add(const std::string& name, const void* bytes, size_t size);
  int64_t value() const;

 private:
  std::map<std::string, uint32_t> parts_;
};

/// The first of rows [0, rows) of group `group` (a path such as "/measurement") of `file` whose
/// datasets `columns` (names in the group, row_crc32 excluded) do not match its row_crc32, or
/// nullopt when all match or the group has no row_crc32 column (logs written before it).
std::optional<hsize_t> first_damaged_row(hid_t file, const std::string& group, const std::vector<std::string>& columns,
                                         hsize_t rows);

}  // namespace coupling::hdf5
