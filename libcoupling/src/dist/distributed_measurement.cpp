#include "coupling/dist/distributed_measurement.h"

#include "coupling/dist/outcome.h"
#include "coupling/dist/share.h"
#include "coupling/engine/fields.h"
#include "coupling/engine/layer_linearity.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <exception>

namespace coupling {
namespace {

/// layer_linearity over the probes of every rank, from each rank's residual states [own, T, L+1, d]
/// (all-gathered, padded to `slice` probes); NaN without a gather when the probes have too few
/// tokens for it.
at::Tensor pooled_linearity(const at::Tensor& states, int64_t own, int64_t slice, int64_t probes,
                            Communicator& communicator) {
  const int64_t T = states.size(1), L = states.size(2) - 1, d = states.size(3);
  if (probes * T < linearity_min_tokens(d)) return layer_linearity(states.narrow(0, 0, 0));
  auto padded = at::zeros({slice, T, L + 1, d}, states.options());
  padded.narrow(0, 0, own).copy_(states.narrow(0, 0, own));
  const auto gathered = communicator.all_gather(padded.reshape({-1}), "the residual states for layer linearity");
  std::vector<at::Tensor> pieces;
  for (int64_t r = 0; r < communicator.world_size(); ++r) {
    const int64_t rows = contiguous_share(probes, r, communicator.world_size()).size();
    if (rows > 0) pieces.push_back(gathered[r].view({slice, T, L + 1, d}).narrow(0, 0, rows));
  }
  return layer_linearity(at::cat(pieces));
}

/// Every rank measures its own contiguous slice of the probes; the per-probe results travel back
/// in one all-gather (each field flattened into one float64 buffer, padded to the largest slice,
/// then the rank's peak memory). A rank without probes of its own measures probe 0 and its rows
/// are dropped.
Measurement measure_split_by_probe(ModelAdapter& adapter, const at::Tensor& probe_inputs,
                                   const MeasurementOptions& options, Communicator& communicator) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t P = probe_inputs.size(0), ranks = communicator.world_size();
  const int64_t slice = contiguous_share(P, 0, ranks).size();  // the largest slice
  const Share own = contiguous_share(P, &communicator);
  const int64_t own_first = own.size() > 0 ? own.begin : 0;
  // The size cap counts all P probes on every rank: all ranks refuse alike, before any collective.
  // Rank 0 alone shows progress (of its own slice, which is the largest).
  MeasurementOptions slice_options = options;
  if (communicator.rank() != 0) slice_options.progress_seconds = 0;
  Measurement m;
  at::Tensor states;  // this rank's residual states, for the fields pooled over all probes
  std::exception_ptr failure;
  try {
    m = measure_probe_slice(adapter, probe_inputs.narrow(0, own_first, std::max<int64_t>(own.size(), 1)), slice_options,
                            own_first, P, &states);
  } catch (...) {
    failure = std::current_exception();
  }
  // A rank whose slice failed (out of memory, a refusal on its device) stops the others at once,
  // instead of leaving them in the all-gather until the timeout.
  rethrow_if_any_rank_failed(failure, "the measurement of their probes", &communicator);

  std::vector<at::Tensor> parts;
  for (const auto& field : measurement_fields()) {
    const at::Tensor& t = m.*field.member;
    if (!t.defined() || !field.per_probe()) continue;
    auto rows = t.to(at::kDouble).reshape({t.size(0), -1});
    parts.push_back(at::cat({rows, at::zeros({slice - rows.size(0), rows.size(1)}, rows.options())}).reshape({-1}));
  }
  parts.push_back(at::full({1}, m.peak_rss_mib, at::kDouble));
  const auto gathered = communicator.all_gather(at::cat(parts), "the measurement's per-probe results");
  for (const auto& from_rank : gathered) m.peak_rss_mib = std::max(m.peak_rss_mib, from_rank[-1].item<double>());
  int64_t offset = 0;
  for (const auto& field : measurement_fields()) {
    at::Tensor& t = m.*field.member;
    if (!t.defined() || !field.per_probe()) continue;
    const int64_t row_size = t.numel() / t.size(0);
    std::vector<at::Tensor> pieces;
    for (int64_t r = 0; r < ranks; ++r) {
      const int64_t rows = contiguous_share(P, r, ranks).size();
      if (rows > 0) pieces.push_back(gathered[r].narrow(0, offset, rows * row_size));
    }
    auto shape = t.sizes().vec();
    shape[0] = P;
    t = at::cat(pieces).reshape(shape).to(t.scalar_type());
    offset += slice * row_size;
  }
  m.layer_linearity = pooled_linearity(states, own.size(), slice, P, communicator);
  m.probes = P;
  m.timings.total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

}  // namespace

Measurement measure(ModelAdapter& adapter, const at::Tensor& probe_inputs, const MeasurementOptions& options,
                    Communicator& communicator) {
  if (communicator.world_size() == 1) return measure(adapter, probe_inputs, options);
  return measure_split_by_probe(adapter, probe_inputs, options, communicator);
}

}  // namespace coupling
