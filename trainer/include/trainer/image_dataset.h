// MNIST-format image classification data (MNIST, Fashion-MNIST, KMNIST, ...): the IDX file
// reader and a dataset of a directory holding the four standard files
//   train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte
// (uncompressed: scripts/prepare_data.sh gunzips Debian's dataset-fashion-mnist into
// data/fashion-mnist). Pixel normalisation uses the training split's mean and deviation.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace trainer {

/// Reads an IDX file of unsigned bytes (type 0x08) into a uint8 tensor of the file's shape.
/// Throws coupling::DataError when the file is missing, gzipped, not IDX, of another element
/// type, or shorter than its header says.
at::Tensor read_idx(const std::string& path);

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

  /// uint8 images [B, H, W] -> float [B, 1, H, W], (pixel / 255 - mean) / deviation.
  at::Tensor normalise(const at::Tensor& images) const;
  double pixel_mean() const { return mean_; }
  double pixel_deviation() const { return deviation_; }

 private:
  ImageSplit train_, test_;
  int64_t classes_ = 0;
  double mean_ = 0.0, deviation_ = 1.0;
};

}  // namespace trainer
