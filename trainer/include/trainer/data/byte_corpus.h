// A byte-level text corpus (vocab 256): loading, the deterministic train/validation split,
// seeded window sampling for training, fixed windows for evaluation, and the byte-bigram
// baseline that a trained model has to beat.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace trainer {

/// A (inputs, targets) pair of int64 token tensors, each [B, T]; targets are inputs shifted by one.
struct TokenBatch {
  at::Tensor inputs;
  at::Tensor targets;
};

enum class Split { kTrain, kValidation };

class ByteCorpus {
 public:
  /// Fraction of the file (at its end) that forms the validation split.
  static constexpr double kValidationFraction = 0.1;

  /// Reads the whole file. Throws coupling::DataError if it is missing, unreadable or empty.
  static ByteCorpus from_file(const std::string& path);
  /// Wraps bytes already in memory (tests, examples). Throws coupling::DataError if empty.
  static ByteCorpus from_bytes(std::vector<uint8_t> bytes, std::string name = "<memory>");

  const std::string& name() const { return name_; }
  int64_t size() const { return static_cast<int64_t>(bytes_.size()); }
  /// SHA-256 of the bytes: the data's part of a run's identity.
  const std::string& sha256() const { return sha256_; }
  /// The first (1 - kValidationFraction) of the bytes.
  int64_t train_size() const { return split_; }
  /// The last kValidationFraction of the bytes.
  int64_t validation_size() const { return size() - split_; }

  /// Throws coupling::DataError unless both splits hold at least one window of `context` tokens
  /// plus its next-token target.
  void require_context(int64_t context) const;

  /// `batch` random training windows of `context` tokens, offsets drawn from `rng`. With
  /// `shards` > 1 (data-parallel ranks sharing one rng state), all `batch` offsets are drawn and
  /// only shard `shard`'s contiguous batch / shards windows are returned, so the shards together
  /// are exactly the single-process batch.
  TokenBatch sample_train(int64_t batch, int64_t context, std::mt19937_64& rng, int64_t shard = 0,
                          int64_t shards = 1) const;

  /// Up to `max_windows` evenly spaced windows of `context` tokens covering one split: a fixed
  /// evaluation set, identical for every call with the same arguments.
  TokenBatch evaluation_windows(Split split, int64_t context, int64_t max_windows) const;

  /// `count` distinct, non-overlapping validation windows chosen at random with `seed`: the fixed
  /// probe inputs of the coupling measurements. Throws coupling::DataError when the validation
  /// split holds fewer than `count` windows of `context` tokens.
  at::Tensor probe_windows(int64_t count, int64_t context, uint64_t seed) const;

  /// Validation cross-entropy (nats/byte) of an add-one smoothed byte-bigram model counted on the
  /// training split, over every transition inside the validation split.
  double bigram_validation_loss() const;

 private:
  ByteCorpus(std::vector<uint8_t> bytes, std::string name);
  TokenBatch windows(int64_t base, const std::vector<int64_t>& offsets, int64_t context) const;

  std::vector<uint8_t> bytes_;
  std::string name_;
  std::string sha256_;
  int64_t split_ = 0;
};

}  // namespace trainer
