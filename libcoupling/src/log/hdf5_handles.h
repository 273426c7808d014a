// Private HDF5 helpers for the coupling log: RAII ownership of hid_t handles and datasets that
// grow along their first (step) axis. Kept out of the public headers (hdf5.h stays internal).
#pragma once

#include "coupling/error.h"

#include <hdf5.h>

#include <string>
#include <utility>
#include <vector>

namespace coupling::hdf5 {

/// Owns one HDF5 identifier and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)), closer_(other.closer_) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
      closer_ = other.closer_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  void reset() {
    if (id_ >= 0 && closer_ != nullptr) closer_(id_);
    id_ = H5I_INVALID_HID;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

/// Throws coupling::IoError with `what` when an HDF5 call returned a negative status or id.
inline hid_t check(hid_t status, const std::string& what) {
  if (status < 0) throw IoError("HDF5: " + what + " failed");
  return status;
}

/// A chunked dataset [rows, item...] with an unlimited first axis, appended one row at a time.
class GrowingDataset {
 public:
  GrowingDataset() = default;
  /// Creates `name` under `parent` with rows of shape `item` (no compression: SWMR friendly).
  static GrowingDataset create(hid_t parent, const std::string& name, hid_t type, const std::vector<hsize_t>& item);
  /// Opens an existing one.
  static GrowingDataset open(hid_t parent, const std::string& name, hid_t type);

  hsize_t rows() const;
  /// Appends one row (item-shaped, contiguous, in this dataset's memory type).
  void append(const void* row);
  /// Reads rows [first, first + count) into `out` (item-shaped rows, in this dataset's memory type).
  void read(hsize_t first, hsize_t count, void* out) const;
  /// Shrinks to `rows` rows.
  void truncate(hsize_t rows);
  /// Writes the dataset's cached rows to the file; throws coupling::IoError (a full disk shows
  /// up here, not in append()).
  void flush() const;
  hid_t id() const { return dataset_.get(); }
  const std::vector<hsize_t>& item() const { return item_; }

 private:
  Handle dataset_;
  hid_t type_ = H5I_INVALID_HID;
  std::vector<hsize_t> item_;
};

}  // namespace coupling::hdf5
