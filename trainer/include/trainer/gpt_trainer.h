// The bundled GPT training loop: AdamW with warm-up + cosine decay, gradient clipping, periodic
// evaluation, atomic checkpoints, exact resume, CSV logs and summary.json. See docs/trainer.md.
#pragma once

#include "trainer/run_config.h"

#include <cstdint>
#include <set>
#include <string>

namespace coupling {
class Communicator;
}

namespace trainer {

/// What summary.json records about a finished run.
struct TrainSummary {
  int64_t final_step = 0;
  double train_loss = 0.0;       ///< nats/byte on fixed training windows, eval mode
  double val_loss = 0.0;         ///< nats/byte on the fixed validation windows, eval mode
  double bigram_val_loss = 0.0;  ///< add-one smoothed byte-bigram baseline on the validation split
  double tokens_per_second = 0.0;
  double wall_seconds = 0.0;  ///< training wall time, summed over resumed sessions
  int64_t parameters = 0;
  double measure_seconds = 0.0;    ///< coupling measurements, whole run
  double overhead_fraction = 0.0;  ///< measure_seconds / (wall_seconds - measure_seconds)
  int64_t world_size = 1;          ///< data-parallel ranks
  double communication_seconds = 0.0;  ///< this session's gradient and loss all-reduces
};

/// Where the training files of a run live.
struct RunPaths {
  explicit RunPaths(const std::string& out);
  std::string out, config, train_log, eval_log, summary, coupling_log;
};

/// Trains a GPT as `config` says, in config.train.out. With `resume`, continues from the newest
/// checkpoint there (config must then be the checkpoint's, see merge_for_resume).
/// With a `communicator`, every rank of the job calls this with the same config: data-parallel
/// training where config.train.batch is the global batch and rank 0 writes every file.
/// Throws coupling::Error subclasses on bad input, I/O failures, divergence and failed collectives.
TrainSummary train_gpt(const GptRunConfig& config, bool resume, coupling::Communicator* communicator = nullptr);

/// The configuration of a run resumed from `run_dir`: its newest checkpoint's config, with the
/// flags in `explicit_flags` taken from `requested` where merge_for_resume allows. Throws
/// coupling::CheckpointError when there is no checkpoint, coupling::ConfigError on a conflict.
GptRunConfig config_for_resume(const std::string& run_dir, const GptRunConfig& requested,
                               const std::set<std::string>& explicit_flags);

/// The default corpus path when --data is empty: data/kjv.txt in the working directory, else
/// next to the source tree the binary was built from. Throws coupling::DataError if absent.
std::string resolve_default_corpus();

}  // namespace trainer
