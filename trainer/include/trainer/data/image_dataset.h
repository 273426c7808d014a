// MNIST-format image classification data (MNIST, Fashion-MNIST, KMNIST, ...): the IDX file
// reader and a dataset of a directory holding the four standard files
//   train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte
// (uncompressed: scripts/prepare_data.sh gunzips Debian's dataset-fashion-mnist into
// data/fashion-mnist). Pixel normalisation uses the training split's mean and deviation.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace trainer {

/// Reads an IDX file of unsigned bytes (type 0x08) into a uint8 tensor of the file's shape.
/// Throws coupling::DataError when the file is missing, gzipped, not IDX, of another element
/// type, or shorter than its header says.
at::Tensor read_idx(const std::string& path);

/// 0..n-1 shuffled by a std::mt19937_64 seeded with `seed`: the ViT's epoch orders and the
/// seeded probe choices.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

/// `count` distinct images of `images` (first dimension), a seeded choice. Throws
/// coupling::DataError naming `source` when it holds fewer than `count`.
at::Tensor seeded_choice(const at::Tensor& images, int64_t count, uint64_t seed, const std::string& source);

/// One split: images uint8 [N, H, W] and labels int64 [N].
struct ImageSplit {
  at::Tensor images;
  at::Tensor labels;
  int64_t size() const { return images.size(0); }
};

class ImageDataset {
 public:
  /// Reads the four files of `dir`. Throws coupling::DataError naming the file and the problem
  /// (missing, corrupt, image and label counts that differ, non-square or mismatched images).
  static ImageDataset from_directory(const std::string& dir);

  const ImageSplit& train() const { return train_; }
  const ImageSplit& test() const { return test_; }
  int64_t image_size() const { return train_.images.size(1); }
  int64_t classes() const { return classes_; }
  /// SHA-256 over the four IDX files' own SHA-256s: the data's part of a run's identity.
  const std::string& sha256() const { return sha256_; }

  /// uint8 images [B, H, W] -> float [B, 1, H, W], (pixel / 255 - mean) / deviation.
  at::Tensor normalise(const at::Tensor& images) const;
  double pixel_mean() const { return mean_; }
  double pixel_deviation() const { return deviation_; }

 private:
  ImageSplit train_, test_;
  int64_t classes_ = 0;
  std::string sha256_;
  double mean_ = 0.0, deviation_ = 1.0;
};

}  // namespace trainer
