#include "trainer/data/image_dataset.h"

#include "coupling/error.h"
#include "coupling/formats/sha256.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <random>
#include <vector>

namespace fs = std::filesystem;

namespace trainer {

at::Tensor read_idx(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (in && !fs::is_regular_file(path, ec)) throw coupling::DataError(path + " is not a regular file");
  if (!in) {
    const bool gzipped = fs::exists(path + ".gz");
    throw coupling::DataError("cannot open IDX file " + path +
                              (gzipped ? ": only " + path + ".gz exists; gunzip it (scripts/prepare_data.sh does)"
                                       : ": pass a directory with the four MNIST-format files via --data"));
  }
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
    throw coupling::DataError(path + " is gzip-compressed: gunzip it first (scripts/prepare_data.sh does)");
  }
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0) {
    throw coupling::DataError(path + " is not an IDX file (its first bytes are not 00 00 <type> <dims>)");
  }
  if (bytes[2] != 0x08) {
    throw coupling::DataError(path + " holds IDX element type " + std::to_string(bytes[2]) +
                              "; only unsigned bytes (0x08), as in MNIST-format files, are supported");
  }
  const size_t dims = bytes[3];
  const size_t header = 4 + 4 * dims;
  if (dims == 0 || bytes.size() < header) throw coupling::DataError(path + " has a truncated IDX header");
  std::vector<int64_t> shape;
  size_t count = 1, stride_span = 1;
  for (size_t i = 0; i < dims; ++i) {
    const unsigned char* b = &bytes[4 + 4 * i];
    shape.push_back((int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | int64_t{b[3]});
    // The strides multiply the sizes too (zeros aside): both must stay far inside int64.
    const auto extent = static_cast<size_t>(shape.back());
    if (__builtin_mul_overflow(count, extent, &count) ||
        __builtin_mul_overflow(stride_span, std::max<size_t>(extent, 1), &stride_span) ||
        stride_span > (size_t{1} << 48)) {
      throw coupling::DataError(path + " has an IDX header whose sizes multiply past 2^48: it is corrupt");
    }
  }
  if (bytes.size() - header != count) {
    throw coupling::DataError(path + " should hold " + std::to_string(count) + " bytes of data after its header " +
                              "but holds " + std::to_string(bytes.size() - header) +
                              ": the file is truncated or corrupt");
  }
  return at::from_blob(bytes.data() + header, shape, at::kByte).clone();
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

at::Tensor seeded_choice(const at::Tensor& images, int64_t count, uint64_t seed, const std::string& source) {
  if (count > images.size(0)) {
    throw coupling::DataError("--probes " + std::to_string(count) + " is more than the " +
                              std::to_string(images.size(0)) + " images of " + source + ": lower --probes");
  }
  auto order = seeded_permutation(images.size(0), seed);
  order.resize(static_cast<size_t>(count));
  return images.index_select(0, at::tensor(order, at::kLong));
}

namespace {

ImageSplit read_split(const std::string& dir, const std::string& prefix) {
  const auto images_path = (fs::path(dir) / (prefix + "-images-idx3-ubyte")).string();
  const auto labels_path = (fs::path(dir) / (prefix + "-labels-idx1-ubyte")).string();
  ImageSplit split{read_idx(images_path), read_idx(labels_path).to(at::kLong)};
  if (split.images.dim() != 3 || split.images.size(1) != split.images.size(2)) {
    throw coupling::DataError(images_path + " does not hold square images (shape " + c10::str(split.images.sizes()) +
                              "; expected [N, H, H])");
  }
  if (split.images.size(0) == 0) throw coupling::DataError(images_path + " holds no images");
  if (split.labels.dim() != 1 || split.labels.size(0) != split.images.size(0)) {
    throw coupling::DataError(labels_path + " holds " + std::to_string(split.labels.size(0)) + " labels for the " +
                              std::to_string(split.images.size(0)) + " images of " + images_path +
                              ": the files do not belong together");
  }
  return split;
}

}  // namespace

ImageDataset ImageDataset::from_directory(const std::string& dir) {
  if (!fs::is_directory(dir)) {
    throw coupling::DataError("image data directory " + dir +
                              " does not exist: run scripts/setup.sh (Fashion-MNIST), or pass --data DIR");
  }
  ImageDataset data;
  data.train_ = read_split(dir, "train");
  data.test_ = read_split(dir, "t10k");
  std::string digests;
  for (const char* file :
       {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    digests += std::string(file) + " " + coupling::sha256_file_hex((fs::path(dir) / file).string()) + "\n";
  }
  data.sha256_ = coupling::sha256_hex(digests);
  if (data.test_.images.size(1) != data.train_.images.size(1)) {
    throw coupling::DataError("the test images of " + dir + " are " + std::to_string(data.test_.images.size(1)) +
                              " pixels wide and the training images " + std::to_string(data.train_.images.size(1)) +
                              ": the files come from different datasets");
  }
  data.classes_ = std::max(data.train_.labels.max().item<int64_t>(), data.test_.labels.max().item<int64_t>()) + 1;
  const auto pixels = data.train_.images.to(at::kDouble) / 255.0;
  data.mean_ = pixels.mean().item<double>();
  data.deviation_ = std::max(pixels.std().item<double>(), 1e-6);
  return data;
}

at::Tensor ImageDataset::normalise(const at::Tensor& images) const {
  return ((images.to(at::kFloat) / 255.0 - mean_) / deviation_).unsqueeze(1);
}

}  // namespace trainer
