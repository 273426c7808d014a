#include "hdf5_handles.h"

#include <algorithm>

namespace coupling::hdf5 {

GrowingDataset GrowingDataset::create(hid_t parent, const std::string& name, hid_t type,
                                      const std::vector<hsize_t>& item) {
  std::vector<hsize_t> dims{0}, max_dims{H5S_UNLIMITED}, chunk{1};
  hsize_t item_elements = 1;
  for (hsize_t extent : item) {
    dims.push_back(extent);
    max_dims.push_back(extent);
    chunk.push_back(std::max<hsize_t>(extent, 1));
    item_elements *= std::max<hsize_t>(extent, 1);
  }
  // About 64 KiB per chunk for small rows (one row per chunk for big ones): few chunk lookups
  // when reading a curve, no huge rewrites when appending.
  chunk[0] = std::clamp<hsize_t>((hsize_t{64} << 10) / (item_elements * H5Tget_size(type)), 1, 1024);
  Handle space(
      check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), max_dims.data()), "H5Screate " + name),
      H5Sclose);
  Handle dcpl(check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate"), H5Pclose);
  check(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), "H5Pset_chunk " + name);
  GrowingDataset ds;
  ds.dataset_ = Handle(check(H5Dcreate2(parent, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                             "creating dataset " + name),
                       H5Dclose);
  ds.type_ = type;
  ds.item_ = item;
  return ds;
}

GrowingDataset GrowingDataset::open(hid_t parent, const std::string& name, hid_t type) {
  GrowingDataset ds;
  ds.dataset_ = Handle(check(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "opening dataset " + name), H5Dclose);
  ds.type_ = type;
  Handle space(check(H5Dget_space(ds.dataset_.get()), "H5Dget_space"), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 1)));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  ds.item_.assign(dims.begin() + 1, dims.end());
  return ds;
}

hsize_t GrowingDataset::rows() const {
  Handle space(check(H5Dget_space(dataset_.get()), "H5Dget_space"), H5Sclose);
  hsize_t dims[H5S_MAX_RANK];
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  return dims[0];
}

void GrowingDataset::append(const void* row) {
  const hsize_t index = rows();
  std::vector<hsize_t> extent{index + 1}, offset{index}, count{1};
  for (hsize_t e : item_) {
    extent.push_back(e);
    offset.push_back(0);
    count.push_back(e);
  }
  check(H5Dset_extent(dataset_.get(), extent.data()), "extending a dataset");
  Handle file_space(check(H5Dget_space(dataset_.get()), "H5Dget_space"), H5Sclose);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, offset.data(), nullptr, count.data(), nullptr),
        "selecting a row");
  Handle memory_space(check(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), "H5Screate"),
                      H5Sclose);
  check(H5Dwrite(dataset_.get(), type_, memory_space.get(), file_space.get(), H5P_DEFAULT, row),
        "writing a row (is the disk full?)");
}

void GrowingDataset::flush() const {
  if (H5Dflush(dataset_.get()) < 0) {
    throw IoError(
        "HDF5: writing rows to the log failed: is its disk full? The rows of the last good measurement "
        "are intact; free space and resume");
  }
}

void GrowingDataset::read(hsize_t first, hsize_t count, void* out) const {
  if (count == 0) return;
  std::vector<hsize_t> offset{first}, extent{count};
  for (hsize_t e : item_) {
    offset.push_back(0);
    extent.push_back(e);
  }
  Handle space(check(H5Dget_space(dataset_.get()), "H5Dget_space"), H5Sclose);
  check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, offset.data(), nullptr, extent.data(), nullptr),
        "selecting rows of a dataset");
  Handle memory(check(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), "H5Screate_simple"),
                H5Sclose);
  check(H5Dread(dataset_.get(), type_, memory.get(), space.get(), H5P_DEFAULT, out), "reading rows of a dataset");
}

void GrowingDataset::truncate(hsize_t new_rows) {
  std::vector<hsize_t> extent{new_rows};
  extent.insert(extent.end(), item_.begin(), item_.end());
  check(H5Dset_extent(dataset_.get(), extent.data()), "truncating a dataset");
}

}  // namespace coupling::hdf5
