#include "trainer/loop/vit_trainer.h"

#include "coupling/error.h"
#include "source_tree.h"
#include "trainer/data/image_dataset.h"
#include "trainer/models/activation_memory.h"
#include "trainer/models/transformer_adapter.h"
#include "trainer/models/vit.h"
#include "trainer/parallel/data_parallel.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <random>

namespace fs = std::filesystem;

namespace trainer {
namespace {

constexpr int64_t kCropPadding = 2;

/// Image classification on an MNIST-format dataset: the ViT's part of the shared training loop.
/// The data order follows from the step alone (epoch e is a shuffle seeded with seed + e), so
/// the sampler has no state to checkpoint.
class VitTask : public TrainingTask {
 public:
  VitTask(const VitRunConfig& config, ImageDataset data)
      : config_(config), data_(std::move(data)), model_(with_data_shape(config.model, data_)) {
    spdlog::info(
        "data: {} ({} training and {} test images of {}x{}, {} classes; pixel mean {:.4f}, deviation "
        "{:.4f}); augmentation: {}",
        config.train.data, data_.train().size(), data_.test().size(), data_.image_size(), data_.image_size(),
        data_.classes(), data_.pixel_mean(), data_.pixel_deviation(), config.augment);
  }

  torch::nn::Module& model() override { return *model_; }
  std::string describe() const override {
    const VitConfig& m = model_->config();
    return fmt::format("ViT: {} layers, d={}, {} heads, {}x{} patches, {} tokens (CLS + patches)", m.layers, m.d_model,
                       m.heads, m.patch, m.patch, m.tokens());
  }
  std::string unit() const override { return "images"; }
  int64_t items_per_step(int64_t global_batch) const override { return global_batch; }
  int64_t training_activation_bytes(int64_t examples) const override {
    const VitConfig& m = model_->config();
    return transformer_activation_bytes(examples, m.tokens(), m.layers, m.d_model, m.heads, m.classes);
  }

  at::Tensor training_loss(int64_t batch, int64_t shard, int64_t shards) override {
    const int64_t per_shard = batch / shards, step = next_step_++;
    std::vector<int64_t> indices;
    for (int64_t i = shard * per_shard; i < (shard + 1) * per_shard; ++i)
      indices.push_back(sample_index(step * batch + i));
    auto images = data_.train().images.index_select(0, at::tensor(indices, at::kLong));
    images = augment(images, step, batch, shard * per_shard);
    const auto labels = data_.train().labels.index_select(0, at::tensor(indices, at::kLong));
    return at::cross_entropy_loss(model_->forward(data_.normalise(images).to(device())), labels.to(device()));
  }
  std::string sampler_state() const override { return ""; }
  void restore_sampler_state(const std::string&, int64_t step) override { next_step_ = step; }

  std::vector<Metric> evaluate(coupling::Communicator* communicator) override {
    const auto [loss, accuracy] = loss_and_accuracy(data_.test(), communicator);
    return {{"test_loss", loss}, {"test_accuracy", accuracy}};
  }
  std::vector<Metric> final_metrics(coupling::Communicator* communicator) override {
    const auto [loss, accuracy] = loss_and_accuracy(data_.train(), communicator);
    return {{"train_loss", loss}, {"train_accuracy", accuracy}};
  }

  at::Tensor probes(int64_t count, uint64_t seed) const override {
    return data_.normalise(seeded_choice(data_.test().images, count, seed, "the test split of " + config_.train.data));
  }
  std::shared_ptr<coupling::ModelAdapter> adapter() override { return std::make_shared<VitAdapter>(model_); }
  std::string data_sha256() const override { return data_.sha256(); }
  std::string model_config_text(int64_t probes) const override {
    const VitConfig& m = model_->config();
    return fmt::format("image={} channels={} patch={} d_model={} layers={} heads={} classes={} probes={}", m.image_size,
                       m.channels, m.patch, m.d_model, m.layers, m.heads, m.classes, probes);
  }
  std::map<std::string, int64_t> token_names() const override {
    return {{"cls", 0}, {"center", model_->config().center_token()}};
  }

 private:
  static VitConfig with_data_shape(VitConfig config, const ImageDataset& data) {
    config.image_size = data.image_size();
    config.classes = data.classes();
    return config;
  }

  /// The training image at position `global` of the endless, per-epoch shuffled sequence.
  int64_t sample_index(int64_t global) {
    const int64_t n = data_.train().size(), epoch = global / n;
    if (epoch != epoch_) {
      order_ = seeded_permutation(n, static_cast<uint64_t>(config_.train.seed) + static_cast<uint64_t>(epoch));
      epoch_ = epoch;
    }
    return order_[static_cast<size_t>(global % n)];
  }

  /// Random crops (and flips) of uint8 images [b, H, W]: the draws of the whole global batch come
  /// from a generator seeded with (seed, step), and this shard uses those from `first` on.
  at::Tensor augment(const at::Tensor& images, int64_t step, int64_t global_batch, int64_t first) const {
    if (config_.augment == "none") return images;
    std::mt19937_64 rng(static_cast<uint64_t>(config_.train.seed) * 1000003ULL + static_cast<uint64_t>(step));
    std::uniform_int_distribution<int64_t> offset(0, 2 * kCropPadding);
    std::bernoulli_distribution flip(0.5);
    struct Draw {
      int64_t dy, dx;
      bool flip;
    };
    std::vector<Draw> draws;
    for (int64_t i = 0; i < global_batch; ++i) {
      const int64_t dy = offset(rng), dx = offset(rng);
      draws.push_back({dy, dx, flip(rng)});
    }
    const int64_t size = images.size(1);
    const auto padded = at::constant_pad_nd(images, {kCropPadding, kCropPadding, kCropPadding, kCropPadding}, 0);
    auto result = at::empty_like(images);
    for (int64_t i = 0; i < images.size(0); ++i) {
      const Draw& d = draws[static_cast<size_t>(first + i)];
      auto crop = padded.select(0, i).narrow(0, d.dy, size).narrow(1, d.dx, size);
      result.select(0, i).copy_(config_.augment == "crop+flip" && d.flip ? crop.flip({1}) : crop);
    }
    return result;
  }

  /// Mean loss and accuracy on the first --eval-windows images of `split`, unaugmented, in eval
  /// mode; data-parallel ranks each take a contiguous share and the sums are all-reduced.
  std::pair<double, double> loss_and_accuracy(const ImageSplit& split, coupling::Communicator* communicator) {
    at::NoGradGuard no_grad;
    const bool was_training = model_->is_training();
    model_->eval();
    const int64_t count = std::min(split.size(), config_.train.eval_windows);
    const coupling::Share own = coupling::contiguous_share(count, communicator);
    const int64_t chunk = std::max<int64_t>(config_.train.batch, 256);
    double loss = 0.0, correct = 0.0;
    for (int64_t start = own.begin; start < own.end; start += chunk) {
      const int64_t n = std::min(chunk, own.end - start);
      const auto logits = model_->forward(data_.normalise(split.images.narrow(0, start, n)).to(device()));
      const auto labels = split.labels.narrow(0, start, n).to(device());
      loss += at::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum).item<double>();
      correct += logits.argmax(1).eq(labels).sum().item<double>();
    }
    model_->train(was_training);
    const auto sums = trainer::sum_over_ranks({loss, correct}, communicator, "the evaluation loss and accuracy");
    loss = sums[0];
    correct = sums[1];
    return {loss / static_cast<double>(count), correct / static_cast<double>(count)};
  }

  VitRunConfig config_;
  ImageDataset data_;
  Vit model_;
  int64_t next_step_ = 0;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace

std::string resolve_default_image_data() {
  const fs::path candidates[] = {fs::path("data") / "fashion-mnist",
                                 fs::path(kSourceTreeDir) / "data" / "fashion-mnist"};
  for (const auto& candidate : candidates) {
    if (fs::is_directory(candidate)) return fs::absolute(candidate).lexically_normal().string();
  }
  throw coupling::DataError(
      "default image data data/fashion-mnist not found: run scripts/setup.sh, or pass --data DIR");
}

std::unique_ptr<TrainingTask> make_vit_task(const VitRunConfig& config) {
  config.validate();
  return std::make_unique<VitTask>(config, ImageDataset::from_directory(config.train.data));
}

TrainSummary train_vit(const VitRunConfig& requested, bool resume, coupling::Communicator* communicator) {
  requested.validate();  // before the run directory is made: a bad value leaves nothing behind
  VitRunConfig config = requested;
  if (config.train.data.empty()) config.train.data = resolve_default_image_data();
  return run_training(
      run_definition(config), [&config] { return make_vit_task(config); }, resume, communicator);
}

}  // namespace trainer
