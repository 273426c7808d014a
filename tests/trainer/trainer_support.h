// Helpers shared by the trainer tests: tiny corpora, run configs and GPTs.
#pragma once

#include "temp_files.h"
#include "trainer/loop/run_config.h"
#include "trainer/models/gpt.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace test_support {

/// A corpus a tiny model learns quickly: an English pangram sentence, repeated (about 9 KB).
inline std::string write_tiny_corpus(const TempDir& dir) {
  return write_text(dir.file("tiny.txt"), "the quick brown fox jumps over the lazy dog. ", 200);
}

/// A very small GPT run (d=32, 2 layers, context 16) writing into `out`.
inline trainer::GptRunConfig tiny_run(const std::string& data, const std::string& out) {
  trainer::GptRunConfig config;
  config.train.data = data;
  config.train.out = out;
  config.train.steps = 40;
  config.train.batch = 8;
  config.train.lr = 3e-3;
  config.train.warmup = 5;
  config.train.eval_every = 20;
  config.train.eval_windows = 16;
  config.train.ckpt_every = 20;
  config.train.log_every = 20;
  config.train.threads = 1;
  config.train.device = "cpu";  // the same numbers on every machine; CUDA has its own tests
  config.model.context = 16;
  config.model.d_model = 32;
  config.model.layers = 2;
  config.model.heads = 2;
  return config;
}

/// A GPT shape for tests.
inline trainer::GptConfig gpt_config(int64_t context, int64_t d_model, int64_t layers, int64_t heads) {
  trainer::GptConfig config;
  config.context = context;
  config.d_model = d_model;
  config.layers = layers;
  config.heads = heads;
  return config;
}

/// A GPT initialised from `seed`, every parameter then perturbed by N(0, perturbation^2) so that
/// LayerNorm gains, biases and positional rows all matter.
inline trainer::Gpt perturbed_gpt(uint64_t seed, const trainer::GptConfig& config, double perturbation) {
  at::manual_seed(seed);
  trainer::Gpt model(config);
  at::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.add_(at::randn_like(p) * perturbation);
  return model;
}

/// Writes an IDX file of unsigned bytes: magic 00 00 08 <dims>, big-endian sizes, data.
inline void write_idx(const std::string& path, const std::vector<int32_t>& shape, const std::vector<uint8_t>& data,
                      uint8_t type = 0x08) {
  std::ofstream out(path, std::ios::binary);
  out.put(0).put(0).put(static_cast<char>(type)).put(static_cast<char>(shape.size()));
  for (int32_t s : shape) {
    for (int shift : {24, 16, 8, 0}) out.put(static_cast<char>((s >> shift) & 0xff));
  }
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

}  // namespace test_support
