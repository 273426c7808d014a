// The bundled GPT trainer: a byte-level GPT on a text corpus (default: the KJV Bible), trained by
// the shared loop (training_loop.h): AdamW, warm-up + cosine decay, clipping, evaluation,
// checkpoints, exact resume, CSV logs, summary.json, coupling instrumentation, data-parallel.
// See docs/trainer.md.
#pragma once

#include "trainer/loop/run_config.h"
#include "trainer/loop/training_loop.h"

#include <memory>
#include <string>

namespace coupling {
class Communicator;
}

namespace trainer {

/// Trains a GPT as `config` says, in config.train.out. With `resume`, continues from the newest
/// checkpoint there (config must then be the checkpoint's: config_for_resume). With a
/// `communicator`, every rank of the job calls this with the same config: data-parallel training
/// where config.train.batch is the global batch and rank 0 writes every file. summary.metrics
/// holds val_loss, train_loss and bigram_val_loss (nats/byte).
/// Throws coupling::Error subclasses on bad input, I/O failures, divergence and failed collectives.
TrainSummary train_gpt(const GptRunConfig& config, bool resume, coupling::Communicator* communicator = nullptr);

/// The GPT, its corpus and metrics as the training loop (and coupling-analyze) see them. The
/// LibTorch generator's state decides the initial weights. Throws coupling::ConfigError or
/// coupling::DataError on bad options or data.
std::unique_ptr<TrainingTask> make_gpt_task(const GptRunConfig& config);

/// The default corpus path when --data is empty: data/kjv.txt in the working directory, else
/// next to the source tree the binary was built from. Throws coupling::DataError if absent.
std::string resolve_default_corpus();

}  // namespace trainer
