#include "trainer/parallel/data_parallel.h"

#include "trainer/loop/divergence_error.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace trainer {
namespace {

using coupling::ConfigError;

/// FNV-1a, 64 bit.
uint64_t hash_bytes(const void* data, size_t size, uint64_t hash = 14695981039346656037ULL) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 1099511628211ULL;
  return hash;
}

int64_t as_int64(uint64_t value) {
  int64_t result;
  std::memcpy(&result, &value, sizeof result);
  return result;
}

std::string rank_list(const std::vector<int64_t>& ranks) {
  std::string text;
  for (int64_t r : ranks) text += (text.empty() ? "" : ", ") + std::to_string(r);
  return text;
}

/// Every rank's values of a small int64 vector (same length on every rank), in rank order.
std::vector<std::vector<int64_t>> gather_values(const std::vector<int64_t>& values, Communicator& communicator,
                                                const std::string& what) {
  const auto gathered = communicator.all_gather(at::tensor(values, at::kLong), what);
  std::vector<std::vector<int64_t>> result;
  for (const auto& t : gathered) {
    const auto contiguous = t.contiguous();
    result.emplace_back(contiguous.data_ptr<int64_t>(), contiguous.data_ptr<int64_t>() + contiguous.numel());
  }
  return result;
}

}  // namespace

std::vector<double> sum_over_ranks(std::vector<double> values, Communicator* communicator, const std::string& what) {
  if (!communicator || values.empty()) return values;
  std::vector<at::Tensor> sums{at::tensor(values, at::kDouble)};
  communicator->all_reduce_sum(sums, what);
  const auto result = sums[0].contiguous();
  return {result.data_ptr<double>(), result.data_ptr<double>() + result.numel()};
}

std::vector<at::Tensor> detached(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> result;
  for (const auto& t : tensors) result.push_back(t.detach());
  return result;
}

GradientAverager::GradientAverager(std::vector<at::Tensor> parameters, Communicator& communicator, int64_t bucket_bytes)
    : parameters_(std::move(parameters)), communicator_(communicator) {
  if (bucket_bytes < 1) throw ConfigError("gradient bucket size must be at least 1 byte");
  int64_t filled = 0;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const int64_t bytes = parameters_[i].numel() * static_cast<int64_t>(parameters_[i].element_size());
    const bool same_dtype =
        buckets_.empty() || parameters_[buckets_.back().front()].scalar_type() == parameters_[i].scalar_type();
    if (buckets_.empty() || filled + bytes > bucket_bytes || !same_dtype) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().push_back(i);
    filled += bytes;
  }
}

void GradientAverager::average() {
  const auto start = std::chrono::steady_clock::now();
  const double scale = 1.0 / static_cast<double>(communicator_.world_size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    std::vector<at::Tensor> grads;
    for (size_t i : buckets_[b]) {
      auto& parameter = parameters_[i];
      if (!parameter.grad().defined()) parameter.mutable_grad() = at::zeros_like(parameter);
      grads.push_back(parameter.grad());
    }
    communicator_.all_reduce_sum(
        grads, "gradients (bucket " + std::to_string(b + 1) + " of " + std::to_string(buckets_.size()) + ")");
    for (auto& g : grads) g.mul_(scale);
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void check_ranks_agree(const std::vector<at::Tensor>& tensors, Communicator& communicator, int64_t step) {
  uint64_t hash = 14695981039346656037ULL;
  for (const auto& t : tensors) {
    const auto bytes = t.detach().cpu().contiguous();
    hash = hash_bytes(bytes.data_ptr(), static_cast<size_t>(bytes.nbytes()), hash);
  }
  const auto hashes = gather_values({as_int64(hash)}, communicator, "the parameter checksum");
  std::vector<int64_t> differing;
  for (size_t r = 1; r < hashes.size(); ++r) {
    if (hashes[r] != hashes[0]) differing.push_back(static_cast<int64_t>(r));
  }
  if (!differing.empty()) {
    throw DivergenceError("the parameters of rank(s) " + rank_list(differing) + " differ from rank 0's after step " +
                          std::to_string(step) +
                          ": the ranks no longer train one model (a non-deterministic op, or ranks started from "
                          "different checkpoints); resume every rank from the last checkpoint");
  }
}

void check_same_config(const std::vector<std::pair<std::string, std::string>>& fields, Communicator& communicator) {
  const auto counts = gather_values({static_cast<int64_t>(fields.size())}, communicator, "the configuration size");
  for (size_t r = 1; r < counts.size(); ++r) {
    if (counts[r] != counts[0]) {
      throw ConfigError("rank " + std::to_string(r) + " has " + std::to_string(counts[r][0]) +
                        " configuration fields and rank 0 has " + std::to_string(counts[0][0]) +
                        ": every rank must run the same program version");
    }
  }
  std::vector<int64_t> hashes;
  for (const auto& [name, value] : fields) {
    const std::string entry = name + "=" + value;
    hashes.push_back(as_int64(hash_bytes(entry.data(), entry.size())));
  }
  const auto all = gather_values(hashes, communicator, "the configuration hashes");
  std::string differences;
  for (size_t r = 1; r < all.size(); ++r) {
    std::string names;
    for (size_t f = 0; f < fields.size(); ++f) {
      if (all[r][f] != all[0][f]) names += (names.empty() ? "" : ", ") + fields[f].first;
    }
    if (!names.empty()) differences += (differences.empty() ? "" : "; ") + ("rank " + std::to_string(r) + ": " + names);
  }
  if (!differences.empty()) {
    throw ConfigError("the ranks were given different configurations (" + differences +
                      " differ from rank 0): launch every rank with the same flags and config file");
  }
}

}  // namespace trainer
