#include "hdf5_attributes.h"

#include <hdf5_hl.h>

namespace coupling::hdf5 {
namespace {

Handle string_type() {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

}  // namespace

void prepare_library() {
  static const bool prepared = [] {
    H5dont_atexit();  // first: it only takes effect before the library initialises
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)prepared;
}

void write_string_attribute(hid_t object, const std::string& name, const std::string& value) {
  Handle type = string_type();
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute(check(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                         "creating attribute " + name),
                   H5Aclose);
  const char* text = value.c_str();
  check(H5Awrite(attribute.get(), type.get(), &text), "writing attribute " + name);
}

void write_int_attribute(hid_t object, const std::string& name, int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute(check(H5Acreate2(object, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                         "creating attribute " + name),
                   H5Aclose);
  check(H5Awrite(attribute.get(), H5T_NATIVE_INT64, &value), "writing attribute " + name);
}

std::optional<std::string> read_string_attribute(hid_t object, const std::string& name) {
  if (H5Aexists(object, name.c_str()) <= 0) return std::nullopt;
  Handle attribute(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose);
  Handle type = string_type();
  char* text = nullptr;
  if (H5Aread(attribute.get(), type.get(), &text) < 0) return std::nullopt;
  std::string value = text ? text : "";
  Handle space(H5Aget_space(attribute.get()), H5Sclose);
  H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, &text);
  return value;
}

std::optional<int64_t> read_int_attribute(hid_t object, const std::string& name) {
  if (H5Aexists(object, name.c_str()) <= 0) return std::nullopt;
  Handle attribute(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose);
  int64_t value = 0;
  if (H5Aread(attribute.get(), H5T_NATIVE_INT64, &value) < 0) return std::nullopt;
  return value;
}

void describe(hid_t object, const std::string& description, const std::string& units) {
  write_string_attribute(object, "description", description);
  write_string_attribute(object, "units", units);
}

Handle make_group(hid_t parent, const std::string& name) {
  return Handle(
      check(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating group " + name),
      H5Gclose);
}

Handle open_group(hid_t parent, const std::string& name) {
  return Handle(check(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), "opening group " + name), H5Gclose);
}

bool exists(hid_t parent, const std::string& path) { return H5Lexists(parent, path.c_str(), H5P_DEFAULT) > 0; }

void write_scale(hid_t parent, const std::string& name, const std::vector<int64_t>& values,
                 const std::string& description, const std::vector<const char*>& labels) {
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle ds(check(H5Dcreate2(parent, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "creating scale " + name),
            H5Dclose);
  if (n > 0) {
    check(H5Dwrite(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "writing scale " + name);
  }
  check(H5DSset_scale(ds.get(), name.c_str()), "H5DSset_scale " + name);
  describe(ds.get(), description, "1");  // indices, counts and codes
  if (labels.empty()) return;
  std::string meanings;
  for (const char* label : labels) {
    if (!meanings.empty()) meanings += ' ';
    meanings += label;
  }
  hsize_t count = labels.size();
  Handle flag_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
  Handle flags(check(H5Acreate2(ds.get(), "flag_values", H5T_STD_I64LE, flag_space.get(), H5P_DEFAULT, H5P_DEFAULT),
                     "creating flag_values of " + name),
               H5Aclose);
  std::vector<int64_t> codes(labels.size());
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<int64_t>(i);
  check(H5Awrite(flags.get(), H5T_NATIVE_INT64, codes.data()), "writing flag_values of " + name);
  write_string_attribute(ds.get(), "flag_meanings", meanings);
}

void attach(hid_t dataset, hid_t parent, const std::vector<std::string>& scales) {
  for (size_t axis = 0; axis < scales.size(); ++axis) {
    Handle scale(check(H5Dopen2(parent, scales[axis].c_str(), H5P_DEFAULT), "opening scale " + scales[axis]), H5Dclose);
    check(H5DSattach_scale(dataset, scale.get(), static_cast<unsigned>(axis)), "attaching scale " + scales[axis]);
  }
}

}  // namespace coupling::hdf5
