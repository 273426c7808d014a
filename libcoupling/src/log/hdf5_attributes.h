// Private HDF5 helpers for the coupling log: attributes, groups, dimension scales, and the file
// and memory types of the C++ column types.
#pragma once

#include "hdf5_handles.h"

#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace coupling::hdf5 {

/// Prepares HDF5 for this process, before its first HDF5 call: silences the automatic error-stack
/// printing (errors become exceptions), and turns off HDF5's closing of still-open files at exit.
/// Every log closes its files through its handles on every path that returns, so a file still
/// open at exit is one whose close failed (a full disk), and HDF5 1.10 crashes closing it again
/// (SIGSEGV in H5F__close_cb); skipping that close leaves the file as its last good flush wrote it.
void prepare_library();

void write_string_attribute(hid_t object, const std::string& name, const std::string& value);
void write_int_attribute(hid_t object, const std::string& name, int64_t value);
std::optional<std::string> read_string_attribute(hid_t object, const std::string& name);
std::optional<int64_t> read_int_attribute(hid_t object, const std::string& name);

/// `description` and `units` attributes (units "1" = dimensionless).
void describe(hid_t object, const std::string& description, const std::string& units);

Handle make_group(hid_t parent, const std::string& name);
Handle open_group(hid_t parent, const std::string& name);
bool exists(hid_t parent, const std::string& path);

/// A fixed 1-D dimension scale with integer values (units "1": indices, counts, codes). `labels` name the codes 0, 1,
/// ... of a categorical axis: written as the CF attributes flag_values and flag_meanings (space-separated).
void write_scale(hid_t parent, const std::string& name, const std::vector<int64_t>& values,
                 const std::string& description, const std::vector<const char*>& labels = {});
/// Attaches the scales named `scales` (datasets under `parent`) to the dataset's axes in order.
void attach(hid_t dataset, hid_t parent, const std::vector<std::string>& scales);

/// File (little-endian) and memory types of a column's C++ type.
template <class T>
struct Types;
template <>
struct Types<int64_t> {
  static hid_t file() { return H5T_STD_I64LE; }
  static hid_t memory() { return H5T_NATIVE_INT64; }
};
template <>
struct Types<double> {
  static hid_t file() { return H5T_IEEE_F64LE; }
  static hid_t memory() { return H5T_NATIVE_DOUBLE; }
};
template <>
struct Types<int8_t> {
  static hid_t file() { return H5T_STD_I8LE; }
  static hid_t memory() { return H5T_NATIVE_INT8; }
};

}  // namespace coupling::hdf5
