// The full configuration of a bundled-trainer run, and the one list of its fields.
//
// visit_fields() is the single place that names every option: the CLI registers flags from it,
// config.toml is written from it, and resume compares a checkpoint's config with the flags a
// user gave through it. Adding an option means adding one line there.
#pragma once

#include "trainer/models/gpt_config.h"
#include "trainer/models/vit_config.h"

#include <cstdint>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace trainer {

/// Options of the training loop shared by the bundled trainers.
struct TrainConfig {
  std::string data;              ///< corpus file; empty = the bundled default (data/kjv.txt)
  std::string out = "runs/gpt";  ///< run directory
  int64_t steps = 1200;
  int64_t batch = 32;
  double lr = 2e-3;
  double min_lr_fraction = 0.1;  ///< cosine decay ends at lr * min_lr_fraction
  double weight_decay = 0.1;
  int64_t warmup = 100;
  double grad_clip = 1.0;  ///< max global gradient L2 norm; 0 disables clipping
  int64_t seed = 1337;
  int64_t eval_every = 250;  ///< 0 = only at the end
  int64_t eval_windows = 256;
  int64_t ckpt_every = 500;  ///< 0 = only at the end
  int64_t log_every = 50;
  int64_t threads = 0;             ///< 0 = one per core (data-parallel: the cores shared by this node's ranks)
  std::string device = "auto";     ///< cpu, cuda, cuda:N or auto (coupling::resolve_device)
  std::string precision = "fp32";  ///< training forward passes: fp32, or bf16 under autocast
  std::string backend = "auto";    ///< data-parallel collectives: auto (nccl on CUDA, else gloo), gloo or nccl
  int64_t dist_timeout = 300;      ///< seconds a rendezvous or collective may wait for the other ranks
  int64_t check_every = 100;       ///< data-parallel parameter checksum every N steps (0 = checkpoints only)
  std::string tensorboard;         ///< TensorBoard event directory; empty = none

  static constexpr int64_t kMaxThreads = 1024;  ///< more intra-op threads than this is a typo

  /// Not a flag: what an --override resume changed ("lr 0.002 -> 0.001"), for the log.
  std::string resume_overrides;

  /// Throws coupling::ConfigError naming the offending flag.
  void validate() const;
};

/// The coupling instrumentation of a bundled-trainer run (libcoupling's CouplingCallback).
struct CouplingConfig {
  std::string log;                         ///< HDF5 log; empty = OUT/coupling.h5; "none" = off
  std::string measure_schedule = "log:8";  ///< coupling::MeasurementSchedule text
  int64_t measure_every = 0;               ///< shorthand for "every:N" in the schedule
  int64_t probes = 8;                      ///< probe sequences (seeded choice of validation windows)
  std::string k;                           ///< K grid; empty = 10,30,50 capped at d
  std::string tokens = "last";             ///< "last", "all", or a comma list (negative = from the end)
  std::string context_pairs;               ///< "t1:t2,..." Jacobians J_{t1 t2} for context coupling
  std::string spectrum = "auto";           ///< "auto", "exact" or "randomized"
  int64_t oversample = 20;                 ///< randomized top-K: test vectors beyond K (p)
  int64_t power_iterations = 4;            ///< randomized top-K: passes through J J^T (q)
  std::string jacobian = "auto";           ///< "auto", "materialised" or "matrix-free"
  int64_t depth_band = 0;                  ///< couple blocks at most this far apart (0 = all)
  double max_overhead = 0.0;               ///< measurement/training time cap (0 = none)
  int64_t max_row_mib = 256;               ///< refuse measurements whose logged row is larger
  std::string max_memory;                  ///< refuse measurements estimated to need more ("4G"); "" = the host's

  bool enabled() const { return log != "none"; }
  /// Throws coupling::ConfigError naming the flag.
  void validate() const;
};

/// How a field may differ between a checkpoint's config and a resumed run.
enum class ResumePolicy {
  kMustMatch,    ///< changes the computation: a different value on resume is an error
  kOverridable,  ///< the optimisation from here on: may change on resume with --override (logged)
  kMayChange,    ///< bookkeeping only (logging, threads, where to write)
};

/// The loop's fields (visit_fields calls this for every run kind).
template <class Visitor, class... Train>
void visit_train_fields(Visitor& v, Train&... t) {
  using P = ResumePolicy;
  v("out", "Run directory (checkpoints, logs, summary.json)", P::kMayChange, t.out...);
  v("steps", "Optimizer steps", P::kMustMatch, t.steps...);
  v("batch", "Examples per step (the global batch when data-parallel)", P::kMustMatch, t.batch...);
  v("lr", "Peak learning rate (AdamW)", P::kOverridable, t.lr...);
  v("min-lr-fraction", "Final learning rate as a fraction of --lr", P::kOverridable, t.min_lr_fraction...);
  v("weight-decay", "AdamW weight decay (matrices and embeddings only)", P::kOverridable, t.weight_decay...);
  v("warmup", "Linear warm-up steps", P::kOverridable, t.warmup...);
  v("grad-clip", "Clip the global gradient norm to this (0 = off)", P::kOverridable, t.grad_clip...);
  v("seed", "Seed for initialisation, sampling and dropout", P::kMustMatch, t.seed...);
  v("eval-every", "Evaluate every N steps (0 = at the end only)", P::kMayChange, t.eval_every...);
  v("eval-windows", "Held-out examples per evaluation (GPT: validation windows; ViT: test images)", P::kMayChange,
    t.eval_windows...);
  v("ckpt-every", "Checkpoint every N steps (0 = at the end only)", P::kMayChange, t.ckpt_every...);
  v("log-every", "Progress line every N steps", P::kMayChange, t.log_every...);
  v("threads", "Intra-op threads (0 = one per core, shared by the ranks of a node)", P::kMayChange, t.threads...);
  v("device",
    "Where to train and measure: cpu, cuda, cuda:N or auto (CUDA when a device is visible; "
    "data-parallel: cuda:LOCAL_RANK)",
    P::kMayChange, t.device...);
  v("precision",
    "Training precision: fp32, or bf16 (autocast for the training forward passes; measurements always "
    "run in fp32)",
    P::kMustMatch, t.precision...);
  v("backend", "Data-parallel collectives: auto (nccl on CUDA, gloo on CPU), gloo or nccl (CUDA builds)", P::kMayChange,
    t.backend...);
  v("dist-timeout", "Seconds a data-parallel rendezvous or collective waits for the other ranks", P::kMayChange,
    t.dist_timeout...);
  v("check-every", "Data-parallel: compare the ranks' parameters every N steps (0 = at checkpoints)", P::kMayChange,
    t.check_every...);
  v("tensorboard",
    "Also stream losses, learning rate and the measurement summaries to TensorBoard event files in "
    "this directory (tensorboard --logdir DIR)",
    P::kMayChange, t.tensorboard...);
}

/// The coupling instrumentation's fields.
template <class Visitor, class... Coupling>
void visit_coupling_fields(Visitor& v, Coupling&... c) {
  using P = ResumePolicy;
  v("log", "Coupling log (HDF5); default OUT/coupling.h5, 'none' = no instrumentation", P::kMustMatch, c.log...);
  v("measure-schedule", "When to measure: every:N log:N steps:A,B checkpoints (plus step 0 and the end)", P::kMayChange,
    c.measure_schedule...);
  v("measure-every", "Also measure every N steps (0 = off)", P::kMayChange, c.measure_every...);
  v("probes", "Probe inputs (fixed, seeded choice of held-out examples)", P::kMustMatch, c.probes...);
  v("k", "K grid for m_K, comma-separated, each <= d-model (default: 10,30,50 capped at d-model)", P::kMustMatch,
    c.k...);
  v("tokens", "Measured tokens: last, all, or a comma list (negative = from the end; ViT: cls, center)", P::kMustMatch,
    c.tokens...);
  v("context-pairs",
    "Context coupling of J_{t1 t2} across blocks and pairs: INPUT:OUTPUT token pairs, e.g. "
    "0:-1,5:-1 (negative = from the end; none by default)",
    P::kMustMatch, c.context_pairs...);
  v("spectrum", "Top-K estimator: auto (randomized when 4 K <= d), exact or randomized", P::kMustMatch, c.spectrum...);
  v("oversample", "Randomized top-K: test vectors beyond K (p)", P::kMustMatch, c.oversample...);
  v("power-iterations", "Randomized top-K: power iterations (q); more is more accurate and slower", P::kMustMatch,
    c.power_iterations...);
  v("jacobian",
    "Jacobian path: auto (matrix-free when its estimated cost is lower), materialised, or matrix-free (from "
    "Jacobian-vector products)",
    P::kMustMatch, c.jacobian...);
  v("depth-band", "Couple only blocks at most this many blocks apart; the rest is NaN (0 = every pair)", P::kMustMatch,
    c.depth_band...);
  v("max-overhead", "Defer measurements beyond this measurement/training time ratio (0 = never)", P::kMayChange,
    c.max_overhead...);
  v("max-row-mib",
    "Refuse to start when one measurement would log more than this many MiB (token coupling grows "
    "as tokens^2)",
    P::kMayChange, c.max_row_mib...);
  v("max-memory",
    "Refuse to start when the measurement's estimated peak memory exceeds this (e.g. 4G; default: what the host has, "
    "MemAvailable or the cgroup's limit)",
    P::kMayChange, c.max_memory...);
}

/// A `coupling-train gpt` run.
struct GptRunConfig {
  static constexpr const char* kModel = "gpt";
  TrainConfig train;
  GptConfig model;
  CouplingConfig coupling;
  void validate() const;

  template <class Visitor, class... Configs>
  static void visit_model(Visitor& v, Configs&... c) {
    using P = ResumePolicy;
    v("data", "Training text file (bytes are tokens); default: data/kjv.txt", P::kMustMatch, c.train.data...);
    v("context", "Context length T (tokens)", P::kMustMatch, c.model.context...);
    v("d-model", "Residual width d", P::kMustMatch, c.model.d_model...);
    v("layers", "Number of transformer blocks L", P::kMustMatch, c.model.layers...);
    v("heads", "Attention heads (must divide d-model)", P::kMustMatch, c.model.heads...);
    v("dropout", "Dropout probability", P::kMustMatch, c.model.dropout...);
  }
};

/// The choices of --augment: "none", "crop" (pad 2, random crop), "crop+flip".
const std::vector<std::string>& augment_choices();

/// A `coupling-train vit` run: its own defaults for the loop and the instrumentation.
struct VitRunConfig {
  static constexpr const char* kModel = "vit";
  VitRunConfig();
  TrainConfig train;
  VitConfig model;
  std::string augment = "none";  ///< "none", "crop" (pad 2 + random crop) or "crop+flip"
  CouplingConfig coupling;
  void validate() const;

  template <class Visitor, class... Configs>
  static void visit_model(Visitor& v, Configs&... c) {
    using P = ResumePolicy;
    v("data", "MNIST-format directory (train-/t10k- images/labels IDX files); default: data/fashion-mnist",
      P::kMustMatch, c.train.data...);
    v("augment", "Training augmentation: none, crop (pad 2, random crop) or crop+flip", P::kMustMatch, c.augment...);
    v("patch", "Patch size (must divide the image size)", P::kMustMatch, c.model.patch...);
    v("d-model", "Residual width d", P::kMustMatch, c.model.d_model...);
    v("layers", "Number of transformer blocks L", P::kMustMatch, c.model.layers...);
    v("heads", "Attention heads (must divide d-model)", P::kMustMatch, c.model.heads...);
    v("dropout", "Dropout probability", P::kMustMatch, c.model.dropout...);
  }
};

/// Calls v(name, description, policy, field_of_c...) for every option of a run (GptRunConfig or
/// VitRunConfig), in a fixed order, passing the same field of each config given (so two configs
/// can be compared or merged). `name` is the long flag without dashes and the key in config.toml.
template <class Visitor, class Config, class... More>
void visit_fields(Visitor&& v, Config& c, More&... more) {
  std::remove_const_t<Config>::visit_model(v, c, more...);
  visit_train_fields(v, c.train, more.train...);
  visit_coupling_fields(v, c.coupling, more.coupling...);
}

/// Every field as (name, value formatted as in config.toml), in visit_fields order.
template <class RunConfig>
std::vector<std::pair<std::string, std::string>> config_fields(const RunConfig& config);

/// The config as TOML (`name = value` lines), readable by --config.
template <class RunConfig>
std::string to_toml(const RunConfig& config);

/// Parses a config.toml written by to_toml (or by hand) on top of the defaults.
/// Throws coupling::ConfigError on unknown keys or bad values.
template <class RunConfig = GptRunConfig>
RunConfig read_config_file(const std::string& path);

/// As read_config_file, from the text of a config file (`path` names it in errors): a
/// checkpoint's config.toml is parsed from the bytes its manifest verified.
template <class RunConfig = GptRunConfig>
RunConfig parse_config_text(const std::string& text, const std::string& path);

/// For a resumed run: the checkpoint's config, with every field named in `explicit_flags` taken
/// from `requested` when its policy allows a change (kOverridable ones only with
/// `allow_override`; the result's train.resume_overrides then says what changed). Throws
/// coupling::ConfigError naming the first flag whose requested value conflicts with the checkpoint.
template <class RunConfig>
RunConfig merge_for_resume(const RunConfig& saved, const RunConfig& requested,
                           const std::set<std::string>& explicit_flags, bool allow_override = false);

}  // namespace trainer
