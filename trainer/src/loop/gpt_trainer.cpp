#include "trainer/loop/gpt_trainer.h"

#include "coupling/error.h"
#include "source_tree.h"
#include "trainer/data/byte_corpus.h"
#include "trainer/models/activation_memory.h"
#include "trainer/models/gpt.h"
#include "trainer/models/transformer_adapter.h"
#include "trainer/parallel/data_parallel.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <random>
#include <sstream>

namespace fs = std::filesystem;

namespace trainer {
namespace {

/// Mean loss (nats/token) of the model over fixed windows, in eval mode, in chunks of `batch`.
/// Data-parallel ranks each take a contiguous share of the windows and sum their totals.
double evaluate(GptImpl& model, const TokenBatch& windows, int64_t batch, c10::Device device,
                coupling::Communicator* communicator) {
  at::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  const int64_t count = windows.inputs.size(0);
  const coupling::Share own = coupling::contiguous_share(count, communicator);
  double total = 0.0;
  for (int64_t start = own.begin; start < own.end; start += batch) {
    const int64_t n = std::min(batch, own.end - start);
    auto logits = model.forward(windows.inputs.narrow(0, start, n).to(device));
    total +=
        next_token_loss(logits, windows.targets.narrow(0, start, n).to(device)).item<double>() * static_cast<double>(n);
  }
  model.train(was_training);
  total = trainer::sum_over_ranks({total}, communicator, "the evaluation loss")[0];
  return total / static_cast<double>(count);
}

/// Next-byte prediction on a byte corpus: the GPT's part of the shared training loop.
class GptTask : public TrainingTask {
 public:
  explicit GptTask(const GptRunConfig& config)
      : config_(config),
        corpus_(ByteCorpus::from_file(config.train.data)),
        model_(config.model),
        sampler_(static_cast<uint64_t>(config.train.seed)) {
    corpus_.require_context(config.model.context);
    validation_ = corpus_.evaluation_windows(Split::kValidation, config.model.context, config.train.eval_windows);
    spdlog::info("data: {} ({} bytes: {} train, {} validation)", config.train.data, corpus_.size(),
                 corpus_.train_size(), corpus_.validation_size());
    bigram_ = corpus_.bigram_validation_loss();
    spdlog::info("byte-bigram baseline: {:.4f} nats/byte on validation", bigram_);
  }

  torch::nn::Module& model() override { return *model_; }
  std::string describe() const override {
    const GptConfig& m = config_.model;
    return fmt::format("GPT: {} layers, d={}, {} heads, context {}", m.layers, m.d_model, m.heads, m.context);
  }
  std::string unit() const override { return "tokens"; }
  int64_t items_per_step(int64_t global_batch) const override { return global_batch * config_.model.context; }
  int64_t training_activation_bytes(int64_t examples) const override {
    const GptConfig& m = config_.model;
    return transformer_activation_bytes(examples, m.context, m.layers, m.d_model, m.heads, m.context * m.vocab);
  }

  at::Tensor training_loss(int64_t batch, int64_t shard, int64_t shards) override {
    // Every rank draws the same global batch from the same sampler state and keeps its shard.
    const TokenBatch tokens = corpus_.sample_train(batch, config_.model.context, sampler_, shard, shards);
    return next_token_loss(model_->forward(tokens.inputs.to(device())), tokens.targets.to(device()));
  }
  std::string sampler_state() const override {
    std::ostringstream text;
    text << sampler_;
    return text.str();
  }
  void restore_sampler_state(const std::string& state, int64_t) override {
    std::istringstream text(state);
    if (!(text >> sampler_)) throw coupling::CheckpointError("the checkpoint's sampler_rng is malformed");
  }

  std::vector<Metric> evaluate(coupling::Communicator* communicator) override {
    return {{"val_loss", trainer::evaluate(*model_, validation_, config_.train.batch, device(), communicator)}};
  }
  std::vector<Metric> final_metrics(coupling::Communicator* communicator) override {
    const auto train_windows =
        corpus_.evaluation_windows(Split::kTrain, config_.model.context, config_.train.eval_windows);
    return {{"train_loss", trainer::evaluate(*model_, train_windows, config_.train.batch, device(), communicator)},
            {"bigram_val_loss", bigram_}};
  }

  at::Tensor probes(int64_t count, uint64_t seed) const override {
    return corpus_.probe_windows(count, config_.model.context, seed);
  }
  std::shared_ptr<coupling::ModelAdapter> adapter() override { return std::make_shared<GptAdapter>(model_); }
  std::string data_sha256() const override { return corpus_.sha256(); }
  std::string model_config_text(int64_t probes) const override {
    const GptConfig& m = config_.model;
    return fmt::format("context={} d_model={} layers={} heads={} vocab={} probes={}", m.context, m.d_model, m.layers,
                       m.heads, m.vocab, probes);
  }

 private:
  GptRunConfig config_;
  ByteCorpus corpus_;
  Gpt model_;
  std::mt19937_64 sampler_;
  TokenBatch validation_;
  double bigram_ = 0.0;
};

}  // namespace

std::string resolve_default_corpus() {
  const fs::path candidates[] = {fs::path("data") / "kjv.txt", fs::path(kSourceTreeDir) / "data" / "kjv.txt"};
  for (const auto& candidate : candidates) {
    if (fs::is_regular_file(candidate)) return fs::absolute(candidate).lexically_normal().string();
  }
  throw coupling::DataError("default corpus data/kjv.txt not found: run scripts/setup.sh, or pass --data FILE");
}

std::unique_ptr<TrainingTask> make_gpt_task(const GptRunConfig& config) {
  config.validate();
  return std::make_unique<GptTask>(config);
}

TrainSummary train_gpt(const GptRunConfig& requested, bool resume, coupling::Communicator* communicator) {
  requested.validate();  // before the run directory is made: a bad value leaves nothing behind
  GptRunConfig config = requested;
  if (config.train.data.empty()) config.train.data = resolve_default_corpus();
  return run_training(
      run_definition(config), [&config] { return make_gpt_task(config); }, resume, communicator);
}

}  // namespace trainer
