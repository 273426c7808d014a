#include "coupling/engine/measurement.h"

#include "coupling/engine/coupling_null.h"
#include "coupling/engine/fields.h"
#include "coupling/engine/jacobian_products.h"
#include "coupling/engine/layer_linearity.h"
#include "coupling/engine/matrix_free.h"
#include "coupling/engine/peak_memory.h"
#include "coupling/engine/probe_bootstrap.h"
#include "coupling/engine/progress.h"
#include "coupling/engine/trajectory.h"
#include "coupling/error.h"
#include "jacobian_store.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>

namespace coupling {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

int64_t resolve_token(int64_t token, int64_t length) {
  const int64_t resolved = token < 0 ? length + token : token;
  if (resolved < 0 || resolved >= length) {
    throw ConfigError("token " + std::to_string(token) + " is outside probe sequences of length " +
                      std::to_string(length));
  }
  return resolved;
}

std::vector<int64_t> resolve_k_grid(const MeasurementOptions& options, int64_t d) {
  std::set<int64_t> ks;
  for (int64_t k : options.k_grid) {
    if (k < 1) throw ConfigError("K values must be >= 1 (got " + std::to_string(k) + ")");
    if (k > d && !options.cap_k_at_d) {
      throw ConfigError("K = " + std::to_string(k) + " is larger than the model's width d = " + std::to_string(d) +
                            ": give K values up to " + std::to_string(d),
                        "MeasurementOptions::k_grid");
    }
    ks.insert(std::min(k, d));
  }
  for (double f : options.k_fractions) {
    if (!(f > 0.0 && f <= 1.0)) throw ConfigError("K fractions must be in (0, 1] (got " + std::to_string(f) + ")");
    ks.insert(std::clamp<int64_t>(std::llround(f * static_cast<double>(d)), 1, d));
  }
  if (ks.empty()) throw ConfigError("the K grid is empty: give at least one K");
  return {ks.begin(), ks.end()};
}

/// Factors with their leading dims permuted like the Jacobians (dims = permutation of the set dims).
TopK permute_factors(const TopK& f, std::vector<int64_t> dims) {
  auto s_dims = dims;
  dims.insert(dims.end(), {static_cast<int64_t>(dims.size()), static_cast<int64_t>(dims.size() + 1)});
  s_dims.push_back(static_cast<int64_t>(s_dims.size()));
  return {f.u.permute(dims).contiguous(), f.s.permute(s_dims).contiguous(), f.v.permute(dims).contiguous()};
}

TopK reshape_factors(const TopK& f, int64_t p, int64_t n) {
  return {f.u.reshape({p, n, f.u.size(-2), f.u.size(-1)}), f.s.reshape({p, n, f.s.size(-1)}),
          f.v.reshape({p, n, f.v.size(-2), f.v.size(-1)})};
}

/// The randomized estimator's options for the probe with global index `probe`: its test matrices
/// are drawn from seed + probe, on either path, whatever the other probes of the call or rank.
RandomizedOptions probe_randomized(const MeasurementOptions& options, int64_t probe) {
  RandomizedOptions randomized = options.randomized;
  randomized.seed += static_cast<uint64_t>(probe);
  return randomized;
}

/// Top-K factors of the Jacobians in `store`, whose flat index runs over `batch` (e.g. {n, L}),
/// one Jacobian at a time: [1, ...batch, ...]. The randomized estimator's test matrix for the
/// whole batch is drawn from seed + probe (the probe's global index), so a probe's result depends
/// neither on which other probes share the call or the rank, nor on where its Jacobians are kept.
TopK store_spectra(const JacobianStore& store, const std::vector<int64_t>& batch, int64_t d, int64_t k,
                   const MeasurementOptions& options, int64_t probe, const std::string& what) {
  const RandomizedOptions randomized = probe_randomized(options, probe);
  const int64_t count = c10::multiply_integers(batch);
  const auto omega = uses_randomized(options.spectrum, k, d)
                         ? test_matrix(batch, d, d, k, randomized).reshape({count, d, -1})
                         : at::Tensor();
  std::vector<at::Tensor> u, s, v;
  ProgressMeter progress(what, count, options.progress_seconds);
  for (int64_t b = 0; b < count; ++b) {
    const TopK f = top_singular(store.get({b}).select(0, 0), k, options.spectrum, options.precision, randomized,
                                omega.defined() ? omega.select(0, b) : at::Tensor());
    u.push_back(f.u);
    s.push_back(f.s);
    v.push_back(f.v);
    progress.update(b + 1, "Jacobians");
  }
  auto shape = batch;
  shape.insert(shape.begin(), 1);
  const auto stacked = [&](const std::vector<at::Tensor>& parts, std::vector<int64_t> tail) {
    auto full = shape;
    full.insert(full.end(), tail.begin(), tail.end());
    return at::stack(parts).view(full);
  };
  return {stacked(u, {d, k}), stacked(s, {k}), stacked(v, {d, k})};
}

/// Where one Jacobian of a probe goes: a diagonal token (index into layout.tokens) and/or a
/// context pair (index into layout.context_pairs); -1 = not that kind.
struct Target {
  int64_t input;
  int64_t diag_index;
  int64_t context_index;
};
/// The Jacobians every probe needs, grouped by output token (one token-local sweep each).
using JacobianPlan = std::map<int64_t, std::vector<Target>>;

JacobianPlan plan_jacobians(const MeasurementLayout& layout) {
  JacobianPlan by_output;
  for (size_t i = 0; i < layout.tokens.size(); ++i) {
    by_output[layout.tokens[i]].push_back({layout.tokens[i], static_cast<int64_t>(i), -1});
  }
  for (size_t c = 0; c < layout.context_pairs.size(); ++c) {
    by_output[layout.context_pairs[c].output].push_back({layout.context_pairs[c].input, -1, static_cast<int64_t>(c)});
  }
  return by_output;
}

/// Progress of the Jacobians across all probes: one unit per (probe, block, output token).
struct JacobianProgress {
  ProgressMeter meter;
  int64_t done = 0;
};

/// The pairs each coupling set computes under the depth band (every pair without one).
struct SetPairs {
  at::Tensor depth, block_token, context;  ///< [L, L], [L n, L n], [L np, L np] bool
};

SetPairs set_pairs(const MeasurementLayout& layout) {
  const int64_t L = layout.blocks, n = static_cast<int64_t>(layout.tokens.size());
  const int64_t np = static_cast<int64_t>(layout.context_pairs.size());
  const auto blocks_of = [L](int64_t per_block) {  // member s = l * per_block + i
    std::vector<int64_t> blocks;
    for (int64_t s = 0; s < L * per_block; ++s) blocks.push_back(s / per_block);
    return blocks;
  };
  return {band_pairs(blocks_of(1), layout.depth_band), band_pairs(blocks_of(n), layout.depth_band),
          band_pairs(blocks_of(std::max<int64_t>(np, 1)), layout.depth_band)};
}

/// Coupling matrices [..., N, N] with NaN outside `pairs` (every pair without a depth band).
at::Tensor outside_band_nan(const at::Tensor& coupling, const at::Tensor& pairs) {
  return coupling.masked_fill(pairs.logical_not().to(coupling.device()), std::numeric_limits<double>::quiet_NaN());
}

/// The summaries of step 5 from the coupling matrices in `m`.
void coupling_summaries(Measurement& m, const SetPairs& pairs) {
  m.depth_mean_offdiag = mean_over_pairs(m.depth_coupling, pairs.depth);
  m.depth_mean_adjacent = mean_adjacent(m.depth_coupling);
  if (m.token_coupling.defined()) m.token_mean_offdiag = mean_off_diagonal(m.token_coupling);
  if (m.block_token_coupling.defined()) {
    m.block_token_mean_offdiag = mean_over_pairs(m.block_token_coupling, pairs.block_token);
  }
  if (m.context_coupling.defined()) {
    std::vector<int64_t> input_of, output_of;
    for (int64_t l = 0; l < m.blocks; ++l) {
      for (const auto& pair : m.context_pairs) {
        input_of.push_back(pair.input);
        output_of.push_back(pair.output);
      }
    }
    const auto inputs = at::tensor(input_of, at::kLong), outputs = at::tensor(output_of, at::kLong);
    m.context_same_input =
        mean_over_pairs(m.context_coupling, inputs.unsqueeze(0).eq(inputs.unsqueeze(1)).logical_and(pairs.context));
    m.context_same_output =
        mean_over_pairs(m.context_coupling, outputs.unsqueeze(0).eq(outputs.unsqueeze(1)).logical_and(pairs.context));
  }
}

/// The uncoupled null (coupling_null.h) of every coupling summary of `m` (all its probes at once,
/// so the null's draws are made once), from the spectra and Frobenius norms of its diagonal
/// Jacobians.
void coupling_nulls(Measurement& m, const SetPairs& pairs) {
  const int64_t L = m.blocks, n = static_cast<int64_t>(m.tokens.size()), P = m.singular_values.size(0);
  // Per Jacobian [P, n, L, 2 (normalisation), nK] -> the variant axes before the member axis,
  // both orientations alike: [P, n, 2, 2, nK, L].
  const CouplingNull per_jacobian = coupling_null(m.singular_values, m.jacobian_frobenius, m.d_model, m.k_grid);
  const auto variants_first = [](const at::Tensor& t) {
    return t.permute({0, 1, 3, 4, 2}).unsqueeze(2).expand({-1, -1, 2, -1, -1, -1}).contiguous();
  };
  const CouplingNull depth{variants_first(per_jacobian.mean), variants_first(per_jacobian.sd)};
  m.depth_coupling_null = depth.mean;
  m.depth_coupling_null_sd = depth.sd;
  const auto summary = [](const CouplingNull& members, const at::Tensor& mask, at::Tensor& mean, at::Tensor& sd) {
    const CouplingNull pooled = null_over_pairs(members, mask);
    mean = pooled.mean;
    sd = pooled.sd;
  };
  summary(depth, pairs.depth, m.depth_mean_offdiag_null, m.depth_mean_offdiag_null_sd);
  summary(depth, adjacent_pairs(L), m.depth_mean_adjacent_null, m.depth_mean_adjacent_null_sd);
  if (n < 2) return;
  // Token coupling: members are the tokens of one block, [P, L, 2, 2, nK, n].
  const auto by_block = [](const at::Tensor& t) { return t.movedim(1, -1).movedim(-2, 1).contiguous(); };
  const CouplingNull tokens{by_block(depth.mean), by_block(depth.sd)};
  summary(tokens, at::ones({n, n}, at::kBool), m.token_mean_offdiag_null, m.token_mean_offdiag_null_sd);
  if (m.has_block_token_coupling) {  // members s = l n + i: [P, 2, 2, nK, L n]
    const auto flat = [&](const at::Tensor& t) { return t.movedim(1, -2).reshape({P, 2, 2, -1, L * n}); };
    summary({flat(tokens.mean), flat(tokens.sd)}, pairs.block_token, m.block_token_mean_offdiag_null,
            m.block_token_mean_offdiag_null_sd);
  }
}

/// Steps 3-5 on the materialised path, for the probe with global index `probe` whose residual
/// states are `states` ([T, L+1, d]): Jacobians, spectra, coupling, into `m` (probe axis of size
/// 1). Only this probe's Jacobians are ever in memory.
void measure_materialised(ModelAdapter& adapter, const at::Tensor& states, const JacobianPlan& plan,
                          const MeasurementOptions& options, int64_t probe, int64_t probes,
                          JacobianProgress& jacobian_progress, Measurement& m) {
  const int64_t L = m.blocks, d = m.d_model;
  const int64_t k_max = m.k_grid.back();
  const int64_t n = static_cast<int64_t>(m.tokens.size());
  const int64_t np = static_cast<int64_t>(m.context_pairs.size());

  // 3. Jacobians, into stores (diagonal index i L + l, context index l np + c; spilled to a file
  // past options.jacobian_memory_bytes), with the Frobenius norm of each as it is made.
  auto t0 = Clock::now();
  const auto on_model = states.options();  // the model's device, float32
  const int64_t budget = options.keep_jacobians ? std::numeric_limits<int64_t>::max() : options.jacobian_memory_bytes;
  JacobianStore diag(n * L, d, on_model, budget);
  std::unique_ptr<JacobianStore> context =
      np > 0 ? std::make_unique<JacobianStore>(L * np, d, on_model, budget) : nullptr;
  auto frobenius = at::empty({1, n, L}, on_model.dtype(at::kDouble));
  for (int64_t l = 0; l < L; ++l) {
    const auto x = states.select(1, l);  // block l's input X^l: [T, d]
    for (const auto& [output, targets] : plan) {
      std::vector<int64_t> inputs;
      for (const auto& target : targets) inputs.push_back(target.input);
      const auto j = jacobians_at_output(adapter, l, x, output, inputs, options.jacobian);
      for (size_t r = 0; r < targets.size(); ++r) {
        const auto jr = j.select(0, static_cast<int64_t>(r));
        if (targets[r].diag_index >= 0) {
          diag.put(targets[r].diag_index * L + l, jr);
          frobenius.select(0, 0).select(0, targets[r].diag_index).select(0, l).copy_(jr.to(at::kDouble).norm());
        }
        if (targets[r].context_index >= 0) context->put(l * np + targets[r].context_index, jr);
      }
      ++jacobian_progress.done;
      if (jacobian_progress.meter.due()) {
        jacobian_progress.meter.update(jacobian_progress.done, fmt::format("probe {}/{}, block {}/{}, output token {}",
                                                                           probe + 1, probes, l + 1, L, output));
      }
    }
  }
  m.jacobian_frobenius = frobenius;
  m.timings.jacobians = seconds_since(t0);

  // 4. Spectra.
  t0 = Clock::now();
  const TopK diag_factors = store_spectra(diag, {n, L}, d, k_max, options, probe, "measurement spectra");
  const TopK context_factors =
      np > 0 ? store_spectra(*context, {L, np}, d, k_max, options, probe, "measurement context spectra") : TopK{};
  m.singular_values = diag_factors.s;
  m.timings.spectra = seconds_since(t0);

  // 5. Coupling matrices and their summaries; each set reads its Jacobians a few rows at a time.
  t0 = Clock::now();
  // Progress of a coupling set of N Jacobians: its 2 N^2 (orientation, i, j) entries.
  const auto coupling_progress = [&](const char* what, int64_t set_size) {
    return ProgressMeter(fmt::format("measurement {} coupling", what), 2 * set_size * set_size,
                         options.progress_seconds);
  };
  // The rows of a set whose entry (b, r), for batch element b, is store index `at(b, r)`.
  const auto rows_of = [](const JacobianStore& store, auto at) -> CouplingRows {
    return [&store, at](int64_t batch_first, int64_t batch_count, int64_t first, int64_t count) {
      std::vector<int64_t> indices;
      for (int64_t b = batch_first; b < batch_first + batch_count; ++b) {
        for (int64_t r = first; r < first + count; ++r) indices.push_back(at(b, r));
      }
      return store.get(indices).view({batch_count, count, store.width(), store.width()});
    };
  };
  const SetPairs pairs = set_pairs(m);
  m.depth_coupling = outside_band_nan(
      coupling_matrices(rows_of(diag, [L](int64_t i, int64_t l) { return i * L + l; }), diag_factors, m.k_grid),
      pairs.depth);
  if (n >= 2) {
    const auto by_block_factors = permute_factors(diag_factors, {0, 2, 1});  // [1, L, n, ...]
    auto token_progress = coupling_progress("token", n);
    m.token_coupling = coupling_matrices(rows_of(diag, [L](int64_t l, int64_t i) { return i * L + l; }),
                                         by_block_factors, m.k_grid, &token_progress);
    if (m.has_block_token_coupling) {
      auto block_token_progress = coupling_progress("block-by-token", L * n);
      m.block_token_coupling = outside_band_nan(
          coupling_matrices(rows_of(diag, [L, n](int64_t, int64_t s) { return (s % n) * L + s / n; }),
                            reshape_factors(by_block_factors, 1, L * n), m.k_grid, &block_token_progress),
          pairs.block_token);
    }
  }
  if (np > 0) {
    auto context_progress = coupling_progress("context", L * np);
    m.context_coupling =
        outside_band_nan(coupling_matrices(rows_of(*context, [](int64_t, int64_t s) { return s; }),
                                           reshape_factors(context_factors, 1, L * np), m.k_grid, &context_progress),
                         pairs.context);
  }
  coupling_summaries(m, pairs);
  m.timings.coupling = seconds_since(t0);
  if (options.keep_jacobians) m.jacobians = diag.all().view({1, n, L, d, d});
}

/// Steps 3-5 on the matrix-free path (matrix_free.h): spectra and coupling from products with the
/// Jacobians, which are never formed; the same fields as measure_materialised, with the
/// Hutchinson estimate as jacobian_frobenius.
void measure_matrix_free(ModelAdapter& adapter, const at::Tensor& states, const MeasurementOptions& options,
                         int64_t probe, int64_t probes, JacobianProgress& jacobian_progress, Measurement& m) {
  const int64_t L = m.blocks, d = m.d_model, k_max = m.k_grid.back();
  const int64_t n = static_cast<int64_t>(m.tokens.size());
  const int64_t np = static_cast<int64_t>(m.context_pairs.size());
  const RandomizedOptions randomized = probe_randomized(options, probe);  // store_spectra's test matrices
  const auto jacobian = [&](int64_t l, const TokenPair& pair) {
    return jacobian_operator(adapter, l, states.select(1, l), pair.input, pair.output, options.jacobian.max_bytes);
  };
  const auto diagonal = [&](int64_t i) { return TokenPair{m.tokens[i], m.tokens[i]}; };

  // 3-4. Spectra, block by block (a streamed model loads each block once here).
  auto t0 = Clock::now();
  const auto diag_omega = test_matrix({n * L}, d, d, k_max, randomized);
  const auto context_omega = np > 0 ? test_matrix({L * np}, d, d, k_max, randomized) : at::Tensor();
  std::vector<std::vector<TopK>> diag_factors(n, std::vector<TopK>(L));  // [token][block]
  std::vector<TopK> context_factors(L * np);                             // [l * np + c]
  auto frobenius = at::empty({1, n, L}, at::kDouble);
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t i = 0; i < n; ++i) {
      const auto spectrum = matrix_free_topk(jacobian(l, diagonal(i)), k_max, randomized, diag_omega[i * L + l]);
      diag_factors[i][l] = spectrum.factors;
      frobenius[0][i][l] = spectrum.frobenius;
    }
    for (int64_t c = 0; c < np; ++c) {
      context_factors[l * np + c] =
          matrix_free_topk(jacobian(l, m.context_pairs[c]), k_max, randomized, context_omega[l * np + c]).factors;
    }
    jacobian_progress.done += n + np;
    if (jacobian_progress.meter.due()) {
      jacobian_progress.meter.update(
          jacobian_progress.done,
          fmt::format("probe {}/{}, block {}/{}, matrix-free spectra", probe + 1, probes, l + 1, L));
    }
  }
  const auto stack = [](const std::vector<TopK>& parts) {
    std::vector<at::Tensor> u, s, v;
    for (const auto& f : parts) u.push_back(f.u), s.push_back(f.s), v.push_back(f.v);
    return TopK{at::stack(u), at::stack(s), at::stack(v)};
  };
  std::vector<TopK> by_token;  // [n] sets over blocks
  for (const auto& per_block : diag_factors) by_token.push_back(stack(per_block));
  m.jacobian_frobenius = frobenius;
  std::vector<at::Tensor> values;
  for (const auto& f : by_token) values.push_back(f.s);
  m.singular_values = at::stack(values).unsqueeze(0);  // [1, n, L, K]
  m.timings.spectra = seconds_since(t0);

  // 5. Coupling, a row of each set at a time.
  t0 = Clock::now();
  const SetPairs pairs = set_pairs(m);
  const auto progress = [&](const char* what, int64_t rows) {
    return ProgressMeter(fmt::format("measurement {} coupling (matrix-free)", what), rows, options.progress_seconds);
  };
  std::vector<at::Tensor> depth;
  for (int64_t i = 0; i < n; ++i) {
    auto meter = progress("depth", L);
    depth.push_back(matrix_free_coupling([&](int64_t l) { return jacobian(l, diagonal(i)); }, by_token[i], m.k_grid,
                                         pairs.depth, &meter));
  }
  m.depth_coupling = at::stack(depth).unsqueeze(0);
  if (n >= 2) {
    std::vector<at::Tensor> by_block;
    for (int64_t l = 0; l < L; ++l) {
      std::vector<TopK> members;
      for (int64_t i = 0; i < n; ++i) members.push_back(diag_factors[i][l]);
      auto meter = progress("token", n);
      by_block.push_back(matrix_free_coupling([&](int64_t i) { return jacobian(l, diagonal(i)); }, stack(members),
                                              m.k_grid, at::ones({n, n}, at::kBool), &meter));
    }
    m.token_coupling = at::stack(by_block).unsqueeze(0);
    if (m.has_block_token_coupling) {
      std::vector<TopK> members;  // s = l n + i
      for (int64_t l = 0; l < L; ++l) {
        for (int64_t i = 0; i < n; ++i) members.push_back(diag_factors[i][l]);
      }
      auto meter = progress("block-by-token", L * n);
      m.block_token_coupling = matrix_free_coupling([&](int64_t s) { return jacobian(s / n, diagonal(s % n)); },
                                                    stack(members), m.k_grid, pairs.block_token, &meter)
                                   .unsqueeze(0);
    }
  }
  if (np > 0) {
    auto meter = progress("context", L * np);
    m.context_coupling = matrix_free_coupling([&](int64_t s) { return jacobian(s / np, m.context_pairs[s % np]); },
                                              stack(context_factors), m.k_grid, pairs.context, &meter)
                             .unsqueeze(0);
  }
  coupling_summaries(m, pairs);
  m.timings.coupling = seconds_since(t0);
}

/// Steps 3-6 for the probe with global index `probe`, whose residual states are `states`
/// ([T, L+1, d]): a Measurement of that one probe (probe axis of size 1), on the CPU.
Measurement measure_one_probe(ModelAdapter& adapter, const at::Tensor& states, const MeasurementLayout& layout,
                              const JacobianPlan& plan, const MeasurementOptions& options, int64_t probe,
                              int64_t probes, JacobianProgress& jacobian_progress) {
  Measurement m;
  static_cast<MeasurementLayout&>(m) = layout;
  m.probes = 1;
  const int64_t L = layout.blocks;
  const int64_t n = static_cast<int64_t>(m.tokens.size());
  if (layout.matrix_free) {
    measure_matrix_free(adapter, states, options, probe, probes, jacobian_progress, m);
  } else {
    measure_materialised(adapter, states, plan, options, probe, probes, jacobian_progress, m);
  }

  // 6. Trajectories of the measured tokens.
  auto t0 = Clock::now();
  m.trajectories =
      states.index_select(0, at::tensor(m.tokens, at::kLong).to(states.device())).unsqueeze(0);  // [1, n, L+1, d]
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  m.residual_norms = at::empty({1, n, L + 1}, f64);
  m.step_lengths = at::empty({1, n, L}, f64);
  for (const auto& field : measurement_fields()) {
    if (field.per_token) m.*field.member = at::empty({1, n}, f64);
  }
  const auto sigma = m.singular_values.to(at::kDouble).contiguous();
  for (int64_t i = 0; i < n; ++i) {
    TokenScalars scalars;
    scalars.trajectory = trajectory_metrics(m.trajectories.select(0, 0).select(0, i));
    m.residual_norms.select(0, 0).select(0, i).copy_(at::tensor(scalars.trajectory.norms, f64));
    m.step_lengths.select(0, 0).select(0, i).copy_(at::tensor(scalars.trajectory.step_lengths, f64));
    std::vector<double> s1(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l) s1[l] = sigma[0][i][l][0].item<double>();
    scalars.inverse_sigma = inverse_sigma_fit(s1);
    for (const auto& field : measurement_fields()) {
      if (field.per_token) (m.*field.member)[0][i] = field.per_token(scalars);
    }
  }
  m.timings.trajectories = seconds_since(t0);
  for (const auto& field : measurement_fields()) {  // results live on the CPU, whatever the model's device
    at::Tensor& t = m.*field.member;
    if (t.defined()) t = t.cpu();
  }
  return m;
}

/// measure() of probes first_probe.. of a set of total_probes (their global indices seed the
/// randomized spectra; the size cap counts the whole set). One forward gives every probe's
/// residual states; then each probe is measured whole before the next begins, so memory holds
/// one probe's Jacobians (L n d^2 floats, plus context pairs) whatever the number of probes.
Measurement measure_probes(ModelAdapter& adapter, const at::Tensor& probe_inputs, const MeasurementOptions& options,
                           int64_t first_probe, int64_t total_probes, at::Tensor* slice_states) {
  if (probe_inputs.dim() < 1 || probe_inputs.size(0) < 1) {
    throw ConfigError("a measurement needs at least one probe (the probe inputs are empty)");
  }
  const auto start = Clock::now();
  reset_peak_memory();
  MeasurementScope scope(adapter);

  // 1. One forward: residual states of every probe.
  std::vector<at::Tensor> states;
  {
    at::NoGradGuard no_grad;
    states = adapter.residual_states(probe_inputs);
  }
  const int64_t L = adapter.num_blocks();
  if (static_cast<int64_t>(states.size()) != L + 1) {
    throw ConfigError("residual_states returned " + std::to_string(states.size()) + " tensors for a model with " +
                      std::to_string(L) + " blocks: it must return X^0..X^L (L + 1 tensors)");
  }
  const auto stacked = at::stack(states, 2).to(at::kFloat);  // [P, T, L+1, d]
  states.clear();
  if (stacked.dim() != 4) throw ConfigError("residual_states must return tensors of shape [B, T, d]");
  const int64_t P = stacked.size(0), T = stacked.size(1), d = stacked.size(3);
  MeasurementLayout layout =
      resolve_layout(total_probes, T, L, d, adapter.causal(), options, adapter.supports_token_local());
  const double forward_seconds = seconds_since(start);

  // 2.-6. Probe by probe.
  const JacobianPlan plan = plan_jacobians(layout);
  JacobianProgress jacobian_progress{
      ProgressMeter("measurement Jacobians", P * L * static_cast<int64_t>(plan.size()), options.progress_seconds)};
  std::vector<Measurement> parts;
  for (int64_t p = 0; p < P; ++p) {
    parts.push_back(measure_one_probe(adapter, stacked.select(0, p), layout, plan, options, first_probe + p,
                                      total_probes, jacobian_progress));
  }

  Measurement m;
  static_cast<MeasurementLayout&>(m) = layout;
  m.probes = P;
  for (const auto& field : measurement_fields()) {
    if (!(parts.front().*field.member).defined()) continue;
    std::vector<at::Tensor> pieces;
    for (auto& part : parts) pieces.push_back(std::move(part.*field.member));
    m.*field.member = pieces.size() == 1 ? pieces.front() : at::cat(pieces);
  }
  const auto null_start = Clock::now();
  coupling_nulls(m, set_pairs(m));
  m.timings.nulls = seconds_since(null_start);
  // Pooled over all probes: computed here when this call holds them all, else by the caller
  // that gathers the slices' states (distributed_measurement.cpp).
  const auto linearity_start = Clock::now();
  if (P == total_probes) m.layer_linearity = layer_linearity(stacked);
  m.timings.linearity = seconds_since(linearity_start);
  if (slice_states) *slice_states = stacked.cpu();
  m.timings.forward = forward_seconds;
  for (const auto& part : parts) {
    m.timings.jacobians += part.timings.jacobians;
    m.timings.spectra += part.timings.spectra;
    m.timings.coupling += part.timings.coupling;
    m.timings.trajectories += part.timings.trajectories;
  }
  m.timings.total = seconds_since(start);
  m.peak_rss_mib = peak_memory_mib();
  return m;
}

}  // namespace

/// What a spectrum's products cost per VJP-equivalent, in materialised rows: their passes carry K +
/// p vectors (small GEMMs) and the JVPs' first backward pass builds a graph. Measured 2.1-2.8 at
/// d = 768-4096 on the CPU (docs/performance.md section 10); the coupling's VJPs cost 1.0-1.1.
constexpr double kSpectrumProductPrice = 2.5;

double matrix_free_cost(const MeasurementLayout& layout, const MeasurementOptions& options) {
  const int64_t L = layout.blocks, d = layout.d_model, k_max = layout.k_grid.back();
  const int64_t n = static_cast<int64_t>(layout.tokens.size());
  const int64_t np = static_cast<int64_t>(layout.context_pairs.size());
  const int64_t width = std::min(k_max + std::max<int64_t>(0, options.randomized.oversample), d);
  const double spectrum =
      kSpectrumProductPrice * 3.0 * static_cast<double>((options.randomized.power_iterations + 1) * width);
  double partners = 0;  // sum over the blocks of the blocks each is coupled with, itself included
  for (int64_t l = 0; l < L; ++l) {
    const int64_t band = layout.depth_band > 0 ? layout.depth_band : L;
    partners += static_cast<double>(std::min(L - 1, l + band) - std::max<int64_t>(0, l - band) + 1);
  }
  double coupled = static_cast<double>(n) * partners + static_cast<double>(np * np) * partners;  // depth, context
  if (n >= 2) coupled += static_cast<double>(L * n * n);                                         // token
  if (layout.has_block_token_coupling) coupled += static_cast<double>(n * n) * partners;
  const double jacobians = static_cast<double>(L * (n + np));
  const double products = jacobians * spectrum + 2.0 * static_cast<double>(k_max) * coupled;
  return products / (jacobians * static_cast<double>(d));
}

MeasurementLayout resolve_layout(int64_t probes, int64_t sequence_length, int64_t blocks, int64_t d_model, bool causal,
                                 const MeasurementOptions& options, bool token_local) {
  MeasurementLayout layout;
  layout.probes = probes;
  layout.blocks = blocks;
  layout.sequence_length = sequence_length;
  layout.d_model = d_model;
  switch (options.tokens.mode) {
    case TokenSelection::Mode::kLast:
      layout.tokens = {sequence_length - 1};
      break;
    case TokenSelection::Mode::kAll:
      for (int64_t t = 0; t < sequence_length; ++t) layout.tokens.push_back(t);
      break;
    case TokenSelection::Mode::kList:
      if (options.tokens.tokens.empty()) throw ConfigError("token list mode needs at least one token");
      for (int64_t t : options.tokens.tokens) layout.tokens.push_back(resolve_token(t, sequence_length));
      break;
  }
  for (const auto& pair : options.tokens.context_pairs) {
    TokenPair resolved{resolve_token(pair.input, sequence_length), resolve_token(pair.output, sequence_length)};
    if (causal && resolved.input > resolved.output) {
      throw ConfigError("context pair (" + std::to_string(pair.input) + ", " + std::to_string(pair.output) +
                        ") is a causal zero: the input token must not come after the output token");
    }
    layout.context_pairs.push_back(resolved);
  }
  layout.k_grid = resolve_k_grid(options, d_model);
  const auto n = static_cast<int64_t>(layout.tokens.size());
  layout.has_block_token_coupling = n >= 2 && blocks * n <= options.max_set_size;
  layout.keeps_jacobians = options.keep_jacobians;
  layout.depth_band = options.depth_band;
  if (options.depth_band < 0) {
    throw ConfigError("the depth band must be >= 0 (0 = every pair)", "MeasurementOptions::depth_band");
  }
  if (options.randomized.oversample < 0 || options.randomized.power_iterations < 0) {
    throw ConfigError(fmt::format("the randomized top-K needs oversampling p >= 0 and power iterations q >= 0 (got p "
                                  "= {}, q = {})",
                                  options.randomized.oversample, options.randomized.power_iterations),
                      "MeasurementOptions::randomized");
  }
  // What stops the matrix-free path, if anything.
  const char* obstacle = !token_local ? "this model's adapter has no token-local function, which it differentiates"
                         : options.spectrum == SpectrumMethod::kExact
                             ? "it estimates spectra by the randomized method only, and an exact spectrum was asked for"
                         : options.keep_jacobians ? "the Jacobians are to be kept, and it never forms them"
                                                  : nullptr;
  if (options.jacobian_path == JacobianPath::kMatrixFree && obstacle) {
    throw ConfigError(
        std::string("the matrix-free Jacobian path cannot run: ") + obstacle + "; use the materialised path",
        "MeasurementOptions::jacobian_path");
  }
  layout.matrix_free =
      options.jacobian_path == JacobianPath::kMatrixFree ||
      (options.jacobian_path == JacobianPath::kAuto && !obstacle &&
       uses_randomized(options.spectrum, layout.k_grid.back(), d_model) && matrix_free_cost(layout, options) < 1.0);
  const int64_t bytes = logged_bytes(layout);
  if (bytes > options.max_row_bytes) {
    throw ConfigError(fmt::format("one measurement would log {:.0f} MiB ({} probes x {} tokens through {} blocks, {} "
                                  "context pairs), over the "
                                  "cap of {:.0f} MiB: measure fewer tokens or probes, or raise the cap (max_row_bytes)",
                                  static_cast<double>(bytes) / (1 << 20), probes, n, blocks,
                                  layout.context_pairs.size(), static_cast<double>(options.max_row_bytes) / (1 << 20)),
                      "MeasurementOptions::max_row_bytes");
  }
  return layout;
}

MeasurementLayout resolve_layout(ModelAdapter& adapter, const at::Tensor& probe_inputs,
                                 const MeasurementOptions& options) {
  std::vector<at::Tensor> states;
  {
    MeasurementScope scope(adapter);
    at::NoGradGuard no_grad;
    states = adapter.residual_states(probe_inputs.narrow(0, 0, std::min<int64_t>(probe_inputs.size(0), 1)));
  }
  if (states.empty() || states.front().dim() != 3) {
    throw ConfigError("residual_states must return L + 1 tensors of shape [B, T, d]");
  }
  return resolve_layout(probe_inputs.size(0), states.front().size(1), adapter.num_blocks(), states.front().size(2),
                        adapter.causal(), options, adapter.supports_token_local());
}

Measurement measure(ModelAdapter& adapter, const at::Tensor& probe_inputs, const MeasurementOptions& options) {
  return measure_probes(adapter, probe_inputs, options, 0, probe_inputs.size(0), nullptr);
}

Measurement measure_probe_slice(ModelAdapter& adapter, const at::Tensor& probe_inputs,
                                const MeasurementOptions& options, int64_t first_probe, int64_t total_probes,
                                at::Tensor* states) {
  return measure_probes(adapter, probe_inputs, options, first_probe, total_probes, states);
}

std::string headline(const Measurement& m) {
  const auto per_probe = depth_coupling_per_probe(m).select(1, 0).contiguous();
  const std::vector<double> values(per_probe.data_ptr<double>(), per_probe.data_ptr<double>() + per_probe.numel());
  const auto interval = ProbeBootstrap(per_probe.numel()).interval(values);
  const std::string bracket =
      std::isnan(interval.low) ? "" : fmt::format(" [{:.4f}, {:.4f}]", interval.low, interval.high);
  const double null = depth_coupling_null_summary(m).mean[0].item<double>();
  return fmt::format("depth m_K={} {:.4f}{} (null {:.4f}; ujv/norm), LSS {:.3f}, norm growth x{:.3f}/block",
                     m.k_grid.front(), interval.mean, bracket, null, m.line_shape_score.mean().item<double>(),
                     m.norm_growth_factor.mean().item<double>());
}

at::Tensor depth_coupling_summary(const Measurement& m, Orientation orientation, Normalisation normalisation) {
  return m.depth_mean_offdiag.select(2, static_cast<int64_t>(orientation))
      .select(2, static_cast<int64_t>(normalisation))
      .mean(at::IntArrayRef{0, 1});
}

CouplingNull depth_coupling_null_summary(const Measurement& m, Orientation orientation, Normalisation normalisation) {
  const auto variant = [&](const at::Tensor& t) {  // [P, n, nK]
    return t.select(2, static_cast<int64_t>(orientation))
        .select(2, static_cast<int64_t>(normalisation))
        .to(at::kDouble);
  };
  const auto sd = variant(m.depth_mean_offdiag_null_sd);
  const double count = static_cast<double>(sd.size(0) * sd.size(1));
  return {variant(m.depth_mean_offdiag_null).mean(at::IntArrayRef{0, 1}),
          sd.pow(2).sum(at::IntArrayRef{0, 1}).sqrt() / count};
}

at::Tensor depth_coupling_per_probe(const Measurement& m, Orientation orientation, Normalisation normalisation) {
  return m.depth_mean_offdiag.select(2, static_cast<int64_t>(orientation))
      .select(2, static_cast<int64_t>(normalisation))
      .mean(1)
      .to(at::kDouble);
}

}  // namespace coupling
