#include "trainer/data/byte_corpus.h"

#include "coupling/error.h"
#include "coupling/formats/sha256.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace trainer {

ByteCorpus::ByteCorpus(std::vector<uint8_t> bytes, std::string name)
    : bytes_(std::move(bytes)), name_(std::move(name)) {
  if (bytes_.empty()) {
    throw coupling::DataError("data file " + name_ + " is empty: pass a non-empty text file with --data");
  }
  split_ = static_cast<int64_t>(std::floor(static_cast<double>(bytes_.size()) * (1.0 - kValidationFraction)));
  sha256_ = coupling::sha256_hex(bytes_.data(), bytes_.size());
}

ByteCorpus ByteCorpus::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  if (!in || !std::filesystem::is_regular_file(path, ec)) {
    throw coupling::DataError(
        "cannot read data file " + path + ": " +
        (in ? std::string("it is not a regular file (a directory or a device)") : std::strerror(errno)) +
        "; pass a text file with --data (run scripts/setup.sh for the default corpus)");
  }
  // A regular file's size is known: exactly that many bytes are read.
  std::vector<uint8_t> bytes(std::filesystem::file_size(path, ec));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (ec || in.gcount() != static_cast<std::streamsize>(bytes.size())) {
    throw coupling::DataError("error while reading data file " + path);
  }
  return ByteCorpus(std::move(bytes), path);
}

ByteCorpus ByteCorpus::from_bytes(std::vector<uint8_t> bytes, std::string name) {
  return ByteCorpus(std::move(bytes), std::move(name));
}

void ByteCorpus::require_context(int64_t context) const {
  const int64_t needed = context + 1;
  if (train_size() < needed || validation_size() < needed) {
    throw coupling::DataError(
        "data file " + name_ + " is too short for --context " + std::to_string(context) + ": its training split has " +
        std::to_string(train_size()) + " bytes and its validation split " + std::to_string(validation_size()) +
        ", each needs at least " + std::to_string(needed) + "; use a larger file or a smaller --context");
  }
}

TokenBatch ByteCorpus::windows(int64_t base, const std::vector<int64_t>& offsets, int64_t context) const {
  const auto count = static_cast<int64_t>(offsets.size());
  auto tokens = at::empty({count, context + 1}, at::kLong);
  auto* out = tokens.data_ptr<int64_t>();
  for (int64_t b = 0; b < count; ++b) {
    const uint8_t* src = bytes_.data() + base + offsets[static_cast<size_t>(b)];
    for (int64_t t = 0; t <= context; ++t) out[b * (context + 1) + t] = src[t];
  }
  return {tokens.narrow(1, 0, context).contiguous(), tokens.narrow(1, 1, context).contiguous()};
}

TokenBatch ByteCorpus::sample_train(int64_t batch, int64_t context, std::mt19937_64& rng, int64_t shard,
                                    int64_t shards) const {
  if (shards < 1 || shard < 0 || shard >= shards || batch % shards != 0) {
    throw coupling::ConfigError("a batch of " + std::to_string(batch) + " cannot be split into " +
                                std::to_string(shards) + " equal shards: make --batch a multiple of the world size");
  }
  std::uniform_int_distribution<int64_t> offset(0, train_size() - context - 1);
  std::vector<int64_t> offsets(static_cast<size_t>(batch));
  for (auto& o : offsets) o = offset(rng);
  const int64_t per_shard = batch / shards;
  return windows(0, {offsets.begin() + shard * per_shard, offsets.begin() + (shard + 1) * per_shard}, context);
}

TokenBatch ByteCorpus::evaluation_windows(Split split, int64_t context, int64_t max_windows) const {
  const int64_t base = split == Split::kTrain ? 0 : split_;
  const int64_t length = split == Split::kTrain ? train_size() : validation_size();
  const int64_t last_start = length - context - 1;
  const int64_t count = std::max<int64_t>(1, std::min(max_windows, last_start + 1));
  std::vector<int64_t> offsets(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    offsets[static_cast<size_t>(i)] = count == 1 ? 0 : (i * last_start) / (count - 1);
  }
  return windows(base, offsets, context);
}

at::Tensor ByteCorpus::probe_windows(int64_t count, int64_t context, uint64_t seed) const {
  const int64_t slots = validation_size() / (context + 1);
  if (count > slots) {
    throw coupling::DataError("--probes " + std::to_string(count) + " is more than the validation split of " + name_ +
                              " holds: it has room for " + std::to_string(slots) + " windows of " +
                              std::to_string(context) + " tokens; lower --probes or --context");
  }
  std::vector<int64_t> slot_ids(static_cast<size_t>(slots));
  for (int64_t i = 0; i < slots; ++i) slot_ids[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(slot_ids.begin(), slot_ids.end(), rng);
  std::vector<int64_t> offsets(slot_ids.begin(), slot_ids.begin() + count);
  std::sort(offsets.begin(), offsets.end());
  for (auto& o : offsets) o *= context + 1;
  return windows(split_, offsets, context).inputs;
}

double ByteCorpus::bigram_validation_loss() const {
  std::vector<std::array<double, 256>> counts(256);
  for (auto& row : counts) row.fill(1.0);  // add-one smoothing
  std::array<double, 256> row_totals;
  row_totals.fill(256.0);
  for (int64_t i = 0; i + 1 < split_; ++i) {
    counts[bytes_[i]][bytes_[i + 1]] += 1.0;
    row_totals[bytes_[i]] += 1.0;
  }
  double nll = 0.0;
  int64_t transitions = 0;
  for (int64_t i = split_; i + 1 < size(); ++i, ++transitions) {
    nll -= std::log(counts[bytes_[i]][bytes_[i + 1]] / row_totals[bytes_[i]]);
  }
  return transitions == 0 ? 0.0 : nll / static_cast<double>(transitions);
}

}  // namespace trainer
