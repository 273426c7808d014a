// One coupling measurement: a model (through its ModelAdapter) and fixed probe inputs in, every
// quantity of docs/metrics.md sections 1-4 out, one probe at a time. No logging and no
// distribution (the only file it touches is the temporary one a large probe's Jacobians spill
// to): the HDF5 log, the callbacks and the data-parallel split (coupling/dist/
// distributed_measurement.h) build on it.
// Each tensor field is described once, in the field registry (coupling/engine/fields.h), which
// the log, the rank gather and the docs walk; docs/metrics.md gives the formulas.
#pragma once

#include "coupling/engine/coupling_metric.h"
#include "coupling/engine/coupling_null.h"
#include "coupling/engine/field_list.h"
#include "coupling/engine/jacobian.h"
#include "coupling/engine/model_adapter.h"
#include "coupling/engine/spectrum.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace coupling {

/// A Jacobian J_{t1 t2}: input token t1, output token t2 (negative = counted from the end).
struct TokenPair {
  int64_t input = -1;
  int64_t output = -1;
};

/// Which token Jacobians to measure.
struct TokenSelection {
  enum class Mode { kLast, kList, kAll };
  Mode mode = Mode::kLast;               ///< diagonal tokens J_{tt}: the last, a list, or every token
  std::vector<int64_t> tokens;           ///< for kList; negative = from the end (-1 = last)
  std::vector<TokenPair> context_pairs;  ///< (t1, t2) pairs for context coupling (may be empty)
};

/// How a measurement gets its Jacobians' spectra and coupling: from the materialised d x d
/// matrices (d rows each, jacobian.h), or matrix-free from products with them
/// (jacobian_products.h, matrix_free.h), whose cost follows K and the coupled pairs instead of d.
/// kAuto: matrix-free when its estimated cost is below the materialised path's
/// (matrix_free_cost()), and it can run: a randomized spectrum, Jacobians not kept, and an
/// adapter with a token-local function.
enum class JacobianPath { kAuto, kMaterialised, kMatrixFree };

struct MeasurementOptions {
  std::vector<int64_t> k_grid{10, 30, 50};  ///< K values (duplicates removed)
  bool cap_k_at_d = true;                   ///< K > d means d; false: K > d is a ConfigError naming d
  std::vector<double> k_fractions;          ///< more K values as fractions of d (rounded, >= 1)
  TokenSelection tokens;
  SpectrumMethod spectrum = SpectrumMethod::kAuto;
  SvdPrecision precision = SvdPrecision::kFloat32;  ///< exact SVD precision
  RandomizedOptions randomized;
  JacobianOptions jacobian;
  JacobianPath jacobian_path = JacobianPath::kAuto;
  /// Coupling only between Jacobians of blocks at most this many blocks apart (|a - b| <= w): the
  /// other entries of the depth, block-by-token and context matrices are NaN and the means
  /// average the band's off-diagonal entries. 0 = every pair. With the matrix-free path a band
  /// saves the products of the pairs outside it.
  int64_t depth_band = 0;
  int64_t max_set_size = 256;   ///< block-by-token coupling only when L * tokens is at most this
  bool keep_jacobians = false;  ///< keep the diagonal-token Jacobians in the result
  /// Refuse (ConfigError, before any Jacobian) a measurement whose logged fields would take more
  /// than this many bytes as float64: token and block-by-token coupling grow as tokens^2.
  int64_t max_row_bytes = int64_t{256} << 20;
  /// One probe's Jacobians (L n d^2 floats, plus L np d^2 for context pairs) beyond this many
  /// bytes are spilled to an unlinked temporary file in $TMPDIR on a CPU, and read back a few at a
  /// time: memory then stays flat in depth (docs/performance.md section 9). Not part of str():
  /// it changes no value.
  int64_t jacobian_memory_bytes = int64_t{256} << 20;
  /// While a measurement runs: a progress line with an ETA at most every this many seconds (none
  /// for a measurement that ends sooner); 0 = silent. Not part of str(): it changes no value.
  double progress_seconds = 5.0;

  /// Options from the command-line texts: k "4,8" (K > d is an error; "" or the default grid
  /// "10,30,50" = the default grid, capped at d); tokens "last", "all" or a comma list
  /// (negative = from the end; names in token_names, such as the ViT's "cls", stand for their
  /// index); context pairs "" or "t1:t2,..." (input:output tokens, same conventions); spectrum
  /// "auto", "exact" or "randomized". Throws coupling::ConfigError naming the option and what it
  /// accepts, with setting() the member at fault (e.g. "MeasurementOptions::k_grid").
  /// jacobian "auto", "materialised" or "matrix-free"; depth_band >= 0.
  static MeasurementOptions parse(const std::string& k, const std::string& tokens, const std::string& context_pairs,
                                  const std::string& spectrum, const std::map<std::string, int64_t>& token_names = {},
                                  const std::string& jacobian = "auto", int64_t depth_band = 0);
  /// Canonical one-line text (K grid, tokens, pairs, estimator and its parameters, precision, and
  /// a forced Jacobian path and a depth band when set): stored in logs and compared on resume.
  std::string str() const;
};

struct MeasurementTimings {
  /// seconds; nulls: the uncoupled null of every coupling summary, linearity: layer_linearity
  double forward = 0, jacobians = 0, spectra = 0, coupling = 0, nulls = 0, trajectories = 0, linearity = 0, total = 0;
};

/// What a measurement of given probes and options will hold: the sizes of every axis of the
/// field registry. resolve_layout() checks the options against the model's shape.
struct MeasurementLayout {
  int64_t probes = 0, blocks = 0, sequence_length = 0, d_model = 0;
  std::vector<int64_t> tokens;            ///< resolved diagonal tokens
  std::vector<TokenPair> context_pairs;   ///< resolved context pairs
  std::vector<int64_t> k_grid;            ///< resolved K values (ascending)
  bool has_block_token_coupling = false;  ///< at least two tokens and L * tokens <= max_set_size
  bool keeps_jacobians = false;
  int64_t depth_band = 0;    ///< MeasurementOptions::depth_band (0 = every pair)
  bool matrix_free = false;  ///< the Jacobian path that runs (MeasurementOptions::jacobian_path resolved)
};

/// The estimated cost of measuring `layout` matrix-free, as a fraction of the materialised
/// path's: products with the Jacobians counted in VJPs (a JVP counts 2, as it is two reverse
/// passes), over the d rows per Jacobian that materialising takes. Per Jacobian: (q + 1)(K + p)
/// JVPs and as many VJPs for its spectrum, at 2.5 rows a VJP (their measured price), and 2 Kmax
/// VJPs for each partner it is coupled with (itself included) in each coupling set it belongs to.
double matrix_free_cost(const MeasurementLayout& layout, const MeasurementOptions& options);

/// The layout of a measurement of P probes of length T through L blocks of width d. Throws
/// coupling::ConfigError naming the option at fault: a token outside the sequence, a causal-zero
/// context pair, a bad K, or logged fields larger than options.max_row_bytes.
/// `token_local`: whether the adapter has a token-local function, which the matrix-free path needs;
/// it also refuses (ConfigError) kMatrixFree with an exact spectrum or kept Jacobians.
MeasurementLayout resolve_layout(int64_t probes, int64_t sequence_length, int64_t blocks, int64_t d_model, bool causal,
                                 const MeasurementOptions& options, bool token_local = true);

/// The layout of measuring `adapter`'s model on `probe_inputs` (one forward pass of the probes).
MeasurementLayout resolve_layout(ModelAdapter& adapter, const at::Tensor& probe_inputs,
                                 const MeasurementOptions& options);

/// The tensors of a measurement: one member per entry of field_list.h, whose axes give its shape
/// (coupling-variant axes: [orientation (ujv, vju), normalisation (norm, trace), k]). Read one by
/// axis names with field(m, "depth_mean_offdiag").sel("k", 10) (fields.h).
struct Measurement : MeasurementLayout {
#define COUPLING_DECLARE_FIELD(name, ...) at::Tensor name;
  COUPLING_MEASUREMENT_FIELDS(COUPLING_DECLARE_FIELD)
#undef COUPLING_DECLARE_FIELD

  MeasurementTimings timings;
  /// Peak resident memory of the process during this measurement (MiB; coupling/engine/peak_memory.h).
  double peak_rss_mib = 0.0;
};

/// Measures `adapter`'s model on `probe_inputs` (whatever residual_states takes, batch first).
/// The model's parameters and their .grad are left untouched. Throws coupling::ConfigError on
/// inconsistent options or a misbehaving adapter.
Measurement measure(ModelAdapter& adapter, const at::Tensor& probe_inputs, const MeasurementOptions& options = {});

/// measure() of a slice of a set of `total_probes` probes whose first has global index
/// `first_probe` (it seeds the randomized spectra, so a probe's numbers do not depend on the
/// slicing). The size cap counts the whole set, so every slice of a set refuses alike. Fields
/// pooled over all probes (layer_linearity) are left undefined unless the slice is the whole set;
/// `states`, if given, receives the slice's residual states [P, T, L + 1, d] (CPU, float32), from
/// which the caller computes them.
Measurement measure_probe_slice(ModelAdapter& adapter, const at::Tensor& probe_inputs,
                                const MeasurementOptions& options, int64_t first_probe, int64_t total_probes,
                                at::Tensor* states = nullptr);

/// One-line summary for progress logs: "depth m_K=10 0.9719 [0.9702, 0.9735] (null 0.9751;
/// ujv/norm), LSS 2.003, norm growth x1.037/block" (smallest K; means over probes and tokens; the
/// bracket is the 95% interval over probes of probe_bootstrap.h, shown from two probes on; the
/// null is depth_mean_offdiag_null's mean).
std::string headline(const Measurement& m);

/// Mean over probes and tokens of depth_mean_offdiag for one variant: [nK] float64.
at::Tensor depth_coupling_summary(const Measurement& m, Orientation orientation = Orientation::kUJV,
                                  Normalisation normalisation = Normalisation::kNorm);
/// The uncoupled null of depth_coupling_summary: mean [nK] and the sd of that mean over probes and
/// tokens (the members' sds pooled as independent: sqrt(sum sd^2) / count), float64.
CouplingNull depth_coupling_null_summary(const Measurement& m, Orientation orientation = Orientation::kUJV,
                                         Normalisation normalisation = Normalisation::kNorm);
/// The same per probe (mean over tokens): [P, nK] float64, what probe intervals resample.
at::Tensor depth_coupling_per_probe(const Measurement& m, Orientation orientation = Orientation::kUJV,
                                    Normalisation normalisation = Normalisation::kNorm);

}  // namespace coupling
