// Data-parallel training on a Communicator: what a C++ training loop needs to train one model on
// several ranks and stay correct. The bundled trainers use exactly these; docs/distributed.md
// shows them in a user's loop.
//
//   comm.broadcast(detached(params), 0, "initial parameters");   // same start everywhere
//   GradientAverager averager(params, comm);                      // after each backward():
//   averager.average();                                           //   .grad = mean over ranks
//   check_ranks_agree(params, comm, step);                        // now and then: bit-identical?
#pragma once

#include "coupling/dist/communicator.h"
#include "coupling/dist/outcome.h"
#include "coupling/dist/share.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace trainer {

using coupling::Communicator;

/// Element-wise sums of `values` over the ranks, in one all-reduce (float64); a null
/// communicator (one process) returns them as they are.
std::vector<double> sum_over_ranks(std::vector<double> values, Communicator* communicator, const std::string& what);

/// Tensors sharing the storage of `tensors` but outside autograd, so a collective may write into
/// parameters in place.
std::vector<at::Tensor> detached(const std::vector<at::Tensor>& tensors);

/// Replaces the gradients of a fixed parameter list by their mean over the ranks. Parameters are
/// grouped into buckets of about `bucket_bytes`; each bucket travels as one all-reduce (not one
/// call per parameter). A parameter without a gradient on this rank counts as a zero gradient.
class GradientAverager {
 public:
  static constexpr int64_t kDefaultBucketBytes = 25 << 20;  ///< PyTorch DDP's default

  GradientAverager(std::vector<at::Tensor> parameters, Communicator& communicator,
                   int64_t bucket_bytes = kDefaultBucketBytes);

  void average();

  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  /// Wall seconds spent inside average() so far (the communication share of training).
  double seconds() const { return seconds_; }

 private:
  std::vector<at::Tensor> parameters_;
  std::vector<std::vector<size_t>> buckets_;  ///< parameter indices of each bucket
  Communicator& communicator_;
  double seconds_ = 0.0;
};

/// Checks that every rank holds bit-identical `tensors` (a 64-bit hash of their bytes is
/// all-gathered). Throws DivergenceError (divergence_error.h) on every rank, naming the ranks that differ from rank 0
/// and `step`.
void check_ranks_agree(const std::vector<at::Tensor>& tensors, Communicator& communicator, int64_t step);

/// Checks that every rank was given the same configuration: `fields` are (name, value) pairs in
/// the same order on every rank. Throws coupling::ConfigError on every rank, naming each rank and field
/// that differs from rank 0.
void check_same_config(const std::vector<std::pair<std::string, std::string>>& fields, Communicator& communicator);

/// Ends a stage that may fail on some ranks only (coupling/dist/outcome.h).
using coupling::rethrow_if_any_rank_failed;

}  // namespace trainer
