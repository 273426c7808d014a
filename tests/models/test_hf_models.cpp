// Hugging Face families (coupling/models/hf/): config.json in both key styles, refusals by name,
// model directories (single file, shards, pickles, lies), token-local
// Jacobians against the generic path and row-by-row autograd for every family, which float32
// weights each family shares rather than copies, and, when
// tests/python/hf_reference.py has written its cases (COUPLING_HF_REFERENCE, the pip
// environment's ctest run), every family against transformers itself.
#include "coupling/engine/jacobian.h"
#include "coupling/engine/jacobian_products.h"
#include "coupling/engine/measurement.h"
#include "coupling/error.h"
#include "coupling/formats/safetensors.h"
#include "coupling/models/hf/config.h"
#include "coupling/models/hf/directory.h"
#include "coupling/models/hf/model.h"
#include "engine_support.h"
#include "error_message.h"
#include "measurement_difference.h"
#include "temp_files.h"
#include "test_paths.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using coupling::hf::HfConfig;
using nlohmann::json;

std::string fixture(const std::string& name) {
  return std::string(test_paths::kTestSourceDir) + "/fixtures/hf-configs/" + name;
}

HfConfig config_file(const std::string& name) {
  return coupling::hf::parse_hf_config(test_support::read_bytes(fixture(name)), name);
}

using test_support::error_of;

TEST(HfConfig, ReleasedCheckpointsInTransformers4KeysParse) {
  const auto gpt2 = config_file("transformers-4/gpt2.json");
  EXPECT_EQ(gpt2.d_model, 768);
  EXPECT_EQ(gpt2.layers, 12);
  EXPECT_EQ(gpt2.head_dim, 64);
  EXPECT_EQ(gpt2.intermediate, 3072);
  EXPECT_TRUE(gpt2.learned_positions);
  EXPECT_EQ(gpt2.activation, coupling::hf::Activation::kGeluTanh);
  EXPECT_EQ(gpt2.rotary.dims, 0);

  const auto pythia = config_file("transformers-4/pythia-160m.json");
  EXPECT_EQ(pythia.layout, coupling::hf::BlockLayout::kParallelPreNorm);
  EXPECT_EQ(pythia.rotary.dims, 16);  // rotary_pct 0.25 of 64
  EXPECT_EQ(pythia.rotary.theta, 10000.0);
  EXPECT_EQ(pythia.vocab, 50304);

  const auto llama = config_file("transformers-4/llama-3.2-1b.json");
  EXPECT_EQ(llama.kv_heads, 8);
  EXPECT_EQ(llama.head_dim, 64);
  EXPECT_TRUE(llama.rms_norm && llama.gated_mlp);
  EXPECT_EQ(llama.rotary.type, "llama3");
  EXPECT_EQ(llama.rotary.factor, 32.0);
  EXPECT_EQ(llama.rotary.theta, 500000.0);
  EXPECT_EQ(llama.rotary.original_max_positions, 8192);

  const auto mistral = config_file("transformers-4/mistral-7b-v0.1.json");
  EXPECT_EQ(mistral.sliding_window, 4096);
  EXPECT_EQ(mistral.kv_heads, 8);

  const auto minilm = config_file("transformers-4/all-minilm-l6-v2.json");
  EXPECT_EQ(minilm.layout, coupling::hf::BlockLayout::kPostNorm);
  EXPECT_FALSE(minilm.causal);
  EXPECT_TRUE(minilm.embedding_norm);
  EXPECT_EQ(minilm.norm_eps, 1e-12);
  EXPECT_EQ(minilm.d_model, 384);
}

TEST(HfConfig, Transformers5RopeParametersParse) {
  const auto neox = config_file("transformers-5/neox_parallel.json");
  EXPECT_EQ(neox.rotary.dims, 2);  // partial_rotary_factor 0.25 of head_dim 8
  EXPECT_EQ(neox.layout, coupling::hf::BlockLayout::kParallelPreNorm);
  const auto llama = config_file("transformers-5/llama_gqa.json");
  EXPECT_EQ(llama.rotary.type, "llama3");
  EXPECT_EQ(llama.rotary.theta, 500000.0);
  EXPECT_EQ(llama.rotary.original_max_positions, 8);
  EXPECT_EQ(llama.head_dim, 16);
  EXPECT_EQ(llama.kv_heads, 2);
  EXPECT_TRUE(llama.attention_bias && llama.mlp_bias);
  EXPECT_EQ(config_file("transformers-5/mistral_window.json").sliding_window, 3);
  EXPECT_EQ(config_file("transformers-5/bert.json").layout, coupling::hf::BlockLayout::kPostNorm);
  EXPECT_EQ(config_file("transformers-5/gpt2.json").max_positions, 16);
}

/// config.json text for a tiny model of `family` with `extra` keys merged in.
std::string tiny_config(const std::string& family, const json& extra = json::object()) {
  json config;
  if (family == "gpt2") {
    config = {{"model_type", "gpt2"}, {"vocab_size", 50}, {"n_embd", 16},
              {"n_layer", 2},         {"n_head", 2},      {"n_positions", 12}};
  } else if (family == "gpt_neox") {
    config = {{"model_type", "gpt_neox"},      {"vocab_size", 50},         {"hidden_size", 16},
              {"num_hidden_layers", 2},        {"num_attention_heads", 2}, {"intermediate_size", 24},
              {"max_position_embeddings", 12}, {"rotary_pct", 0.5}};
  } else if (family == "llama" || family == "mistral") {
    config = {{"model_type", family},     {"vocab_size", 50},
              {"hidden_size", 16},        {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2},
              {"intermediate_size", 24},  {"max_position_embeddings", 12}};
  } else {
    config = {{"model_type", "bert"},         {"vocab_size", 50},         {"hidden_size", 16},
              {"num_hidden_layers", 2},       {"num_attention_heads", 2}, {"intermediate_size", 24},
              {"max_position_embeddings", 12}};
  }
  config.update(extra);
  return config.dump();
}

HfConfig tiny(const std::string& family, const json& extra = json::object()) {
  return coupling::hf::parse_hf_config(tiny_config(family, extra), family + ".json");
}

TEST(HfConfig, OptionsThatChangeTheMathAreRefusedByName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {error_of([] {
         tiny("gpt2", {{"model_type", "falcon"}});
       }),
       "model_type \"falcon\" is not a family libcoupling reads (gpt2, gpt_neox, llama, mistral, bert): export "
       "the model to TorchScript"},
      {error_of([] {
         tiny("llama", {{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}}});
       }),
       "'rope_type' = \"yarn\" is not implemented here"},
      {error_of([] {
         tiny("gpt2", {{"scale_attn_by_inverse_layer_idx", true}});
       }),
       "scale_attn_by_inverse_layer_idx = true is not implemented here"},
      {error_of([] {
         tiny("bert", {{"position_embedding_type", "relative_key"}});
       }),
       "position_embedding_type = \"relative_key\" is not implemented here"},
      {error_of([] {
         tiny("bert", {{"is_decoder", true}});
       }),
       "is_decoder = true is not implemented here"},
      {error_of([] {
         tiny("gpt_neox", {{"hidden_act", "gelu_10"}});
       }),
       "'hidden_act' = \"gelu_10\" is not implemented"},
      {error_of([] {
         tiny("llama", {{"partial_rotary_factor", 0.5}});
       }),
       "'partial_rotary_factor' is not implemented"},
      {error_of([] {
         tiny("llama", {{"sliding_window", 4}});
       }),
       "'sliding_window' is not a Llama option"},
      {error_of([] {
         tiny("gpt2", {{"n_embd", 15}});
       }),
       "'n_head' (2) must divide the hidden size (15)"},
      {error_of([] {
         tiny("gpt2", {{"n_layer", "2"}});
       }),
       "'n_layer' must be an integer"},
      {error_of([] {
         tiny("gpt2", {{"n_layer", -1}});
       }),
       "'n_layer' must be in [1, "},
      {error_of([] { coupling::hf::parse_hf_config("{\"model_type\": \"gpt2\"}", "c.json"); }),
       "'vocab_size' is missing"},
      {error_of([] { coupling::hf::parse_hf_config("[1, 2]", "c.json"); }), "c.json is not a JSON object"},
      {error_of([] {
         tiny("llama", {{"quantization_config", {{"load_in_8bit", true}}}});
       }),
       "'quantization_config' says the weights are quantized"},
      {error_of([] {
         tiny("llama", {{"rope_scaling", {{"rope_type", "llama3"}}}});
       }),
       "'factor' is missing: rope_type llama3 needs it"},
      {error_of([] {
         tiny("llama", {{"rope_scaling", {{"rope_type", "linear"}, {"factor", 2.0}}},
                        {"rope_parameters", {{"rope_type", "default"}}}});
       }),
       "'rope_parameters' and 'rope_scaling' are both given"},
      {error_of([] {
         tiny("mistral", {{"sliding_window", 0}});
       }),
       "'sliding_window' must be in [1, "},
  };
  for (const auto& [message, expected] : cases) EXPECT_NE(message.find(expected), std::string::npos) << message;
}

TEST(HfConfig, EachFamilyReadsItsOwnKeysAsTransformersDoes) {
  // NeoX: rotary_emb_base and rotary_pct; a top-level rope_theta is not NeoX's (transformers ignores it).
  const auto neox = tiny("gpt_neox", {{"rope_theta", 500.0}, {"rotary_emb_base", 1000}, {"rotary_pct", 1.0}});
  EXPECT_EQ(neox.rotary.theta, 1000.0);
  EXPECT_EQ(neox.rotary.dims, 8);
  EXPECT_EQ(tiny("gpt_neox").rotary.theta, 10000.0);
  // Llama: rope_theta; NeoX's keys are not Llama's.
  EXPECT_EQ(tiny("llama", {{"rope_theta", 500.0}, {"rotary_emb_base", 7}}).rotary.theta, 500.0);
  // Mistral: a missing key takes MistralConfig's default, null means none / one per head; no biases.
  const auto mistral = tiny("mistral", {{"num_key_value_heads", nullptr}, {"attention_bias", true}});
  EXPECT_EQ(mistral.kv_heads, 4);
  EXPECT_EQ(mistral.sliding_window, 4096);
  EXPECT_FALSE(mistral.attention_bias);
  EXPECT_EQ(tiny("mistral", {{"sliding_window", nullptr}}).sliding_window, 0);
  EXPECT_EQ(coupling::hf::parse_hf_config(R"({"model_type": "mistral", "vocab_size": 5, "hidden_size": 64,
      "num_hidden_layers": 1, "num_attention_heads": 16, "intermediate_size": 8, "max_position_embeddings": 4})",
                                          "m.json")
                .kv_heads,
            8);
  // GPT-2 has no head_dim or key-value groups: transformers ignores both keys.
  const auto gpt2 = tiny("gpt2", {{"head_dim", 3}, {"num_key_value_heads", 1}, {"activation_function", "gelu_fast"}});
  EXPECT_EQ(gpt2.head_dim, 8);
  EXPECT_EQ(gpt2.kv_heads, 2);
  EXPECT_EQ(gpt2.activation, coupling::hf::Activation::kGeluFast);
}

TEST(HfConfig, DynamicRotaryRefusesProbesBeyondTheTrainedContext) {
  const auto config = tiny(
      "llama", {{"rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}, {"original_max_position_embeddings", 8}}}});
  EXPECT_NO_THROW(config.check_probes(8, 0, 49));
  EXPECT_NE(error_of([&] { config.check_probes(9, 0, 49); }).find("knows 8 positions (dynamic rotary"),
            std::string::npos);
  EXPECT_NE(error_of([&] { config.check_probes(8, 0, 50); }).find("outside [0, 50)"), std::string::npos);
}

/// Random weights of the shapes the model asks for (norm weights near 1), recorded by name.
struct RandomWeights {
  explicit RandomWeights(uint64_t seed) : generator(at::make_generator<at::CPUGeneratorImpl>(seed)) {}
  coupling::hf::TensorSource source() {
    return [this](const std::string& name, const std::vector<int64_t>& shape) {
      const bool norm_weight = name.find("norm") != std::string::npos || name.find("ln_") != std::string::npos ||
                               name.find("LayerNorm") != std::string::npos;
      auto value = at::randn(shape, generator, at::TensorOptions()) * 0.3;
      if (norm_weight && name.size() > 6 && name.compare(name.size() - 6, 6, "weight") == 0) value = value + 1.0;
      tensors.emplace_back(name, value);
      return value;
    };
  }
  at::Generator generator;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
};

/// A model directory written from `weights` with `prefix` on every name.
void write_directory(const fs::path& dir, const std::string& config, const RandomWeights& weights,
                     const std::string& prefix) {
  fs::create_directories(dir);
  test_support::write_text((dir / "config.json").string(), config);
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& [name, value] : weights.tensors) named.emplace_back(prefix + name, value);
  named.emplace_back(prefix + "lm_head.weight", at::zeros({2, 2}));  // extra tensors are ignored
  test_support::write_text((dir / "model.safetensors").string(), coupling::safetensors::serialize(named));
}

TEST(HfDirectory, ReadsSingleFilesAndShardsWithPrefixesAndRefusesLiesByName) {
  at::manual_seed(4);
  test_support::TempDir temp;
  RandomWeights weights(3);
  const auto config = tiny("gpt2");
  coupling::hf::HfTransformer made(config, weights.source());
  write_directory(temp.path() / "single", tiny_config("gpt2"), weights, "transformer.");
  coupling::hf::HfDirectory single((temp.path() / "single").string());
  coupling::hf::HfTransformer loaded(single.config(), coupling::hf::directory_source(single));
  const auto ids = at::randint(50, {2, 6}, at::kLong);
  EXPECT_TRUE(at::equal(made->residual_states(ids).back(), loaded->residual_states(ids).back()));

  // Shards: half the tensors in each, listed by an index.
  const fs::path sharded = temp.path() / "sharded";
  fs::create_directories(sharded);
  test_support::write_text((sharded / "config.json").string(), tiny_config("gpt2"));
  std::vector<std::pair<std::string, at::Tensor>> shards[2];
  json weight_map;
  for (size_t i = 0; i < weights.tensors.size(); ++i) {
    shards[i % 2].push_back(weights.tensors[i]);
    weight_map[weights.tensors[i].first] = "model-0000" + std::to_string(i % 2 + 1) + "-of-00002.safetensors";
  }
  for (int s = 0; s < 2; ++s) {
    test_support::write_text((sharded / ("model-0000" + std::to_string(s + 1) + "-of-00002.safetensors")).string(),
                             coupling::safetensors::serialize(shards[s]));
  }
  const auto write_index = [&](const json& map) {
    test_support::write_text((sharded / "model.safetensors.index.json").string(),
                             json{{"metadata", json::object()}, {"weight_map", map}}.dump());
  };
  write_index(weight_map);
  coupling::hf::HfDirectory from_shards(sharded.string());
  coupling::hf::HfTransformer sharded_model(from_shards.config(), coupling::hf::directory_source(from_shards));
  EXPECT_TRUE(at::equal(made->residual_states(ids).back(), sharded_model->residual_states(ids).back()));

  const auto message_of = [](const fs::path& dir) {
    return error_of([&] {
      coupling::hf::HfDirectory directory(dir.string());
      coupling::hf::HfTransformer model(directory.config(), coupling::hf::directory_source(directory));
    });
  };
  auto lying = weight_map;
  lying["h.0.ln_1.weight"] = "../model-00002-of-00002.safetensors";
  write_index(lying);
  EXPECT_NE(message_of(sharded).find("is not a file name in the model's directory"), std::string::npos);
  lying = weight_map;
  lying["h.0.ln_1.weight"] = "model-00003-of-00003.safetensors";
  write_index(lying);
  EXPECT_NE(message_of(sharded).find("shard model-00003-of-00003.safetensors (listed for h.0.ln_1.weight) is missing"),
            std::string::npos);
  lying = weight_map;  // the other shard, which does not hold it
  const std::string first_shard = "model-00001-of-00002.safetensors", second_shard = "model-00002-of-00002.safetensors";
  lying["h.0.ln_1.weight"] = weight_map["h.0.ln_1.weight"] == first_shard ? second_shard : first_shard;
  write_index(lying);
  EXPECT_NE(message_of(sharded).find("h.0.ln_1.weight is listed in shard"), std::string::npos);
  lying = weight_map;
  lying.erase("h.1.mlp.c_fc.bias");
  write_index(lying);
  EXPECT_NE(message_of(sharded).find("lacks tensor h.1.mlp.c_fc.bias"), std::string::npos);

  // Another shape than config.json implies; weights of another family; pickles; no weights.
  test_support::write_text((temp.path() / "single" / "config.json").string(), tiny_config("gpt2", {{"n_inner", 32}}));
  EXPECT_NE(message_of(temp.path() / "single")
                .find("tensor transformer.h.0.mlp.c_fc.weight has shape [16, 64] and "
                      "config.json implies [16, 32]"),
            std::string::npos);
  test_support::write_text((temp.path() / "single" / "config.json").string(), tiny_config("llama"));
  EXPECT_NE(message_of(temp.path() / "single").find("has no tensor named ...embed_tokens.weight"), std::string::npos);
  const fs::path pickled = temp.path() / "pickled";
  fs::create_directories(pickled);
  test_support::write_text((pickled / "config.json").string(), tiny_config("gpt2"));
  EXPECT_NE(message_of(pickled).find("no model.safetensors or model.safetensors.index.json in"), std::string::npos);
  test_support::write_text((pickled / "pytorch_model.bin").string(), "not loaded");
  EXPECT_NE(message_of(pickled).find("holds its weights as pytorch_model.bin (a Python pickle or another framework's "
                                     "file), which libcoupling never loads; convert it to safetensors once in the "
                                     "project's venv: .venv/bin/python -c \"from transformers import AutoModel;"),
            std::string::npos);
  EXPECT_NE(message_of(temp.path() / "absent").find("is not a directory"), std::string::npos);
  // Integer (e.g. quantized) weights are refused, not converted.
  auto integer = weights;
  integer.tensors[3].second = integer.tensors[3].second.to(at::kInt);
  write_directory(temp.path() / "integer", tiny_config("gpt2"), integer, "");
  EXPECT_NE(message_of(temp.path() / "integer").find("has dtype I32, not a floating-point type"), std::string::npos);
  fs::create_directories(temp.path() / "empty");
  EXPECT_NE(message_of(temp.path() / "empty").find("no config.json in"), std::string::npos);
}

TEST(HfDirectory, OldBertCheckpointsWithGammaAndBetaRead) {
  test_support::TempDir temp;
  RandomWeights weights(6);
  coupling::hf::HfTransformer made(tiny("bert"), weights.source());
  for (auto& [name, value] : weights.tensors) {
    for (const auto& [modern, legacy] : {std::pair<std::string, std::string>{"LayerNorm.weight", "LayerNorm.gamma"},
                                         {"LayerNorm.bias", "LayerNorm.beta"}}) {
      const auto at = name.find(modern);
      if (at != std::string::npos) name.replace(at, modern.size(), legacy);
    }
  }
  write_directory(temp.path() / "bert", tiny_config("bert"), weights, "bert.");
  coupling::hf::HfDirectory directory((temp.path() / "bert").string());
  coupling::hf::HfTransformer loaded(directory.config(), coupling::hf::directory_source(directory));
  const auto ids = at::randint(50, {1, 5}, at::kLong);
  EXPECT_TRUE(at::equal(made->residual_states(ids).back(), loaded->residual_states(ids).back()));
}

/// Tiny configurations covering every code path: each family, GQA, a window, both NeoX residuals,
/// rotary scalings, a post-norm encoder.
std::vector<std::pair<std::string, HfConfig>> family_cases() {
  return {
      {"gpt2", tiny("gpt2")},
      {"gpt2 unscaled quick_gelu",
       tiny("gpt2", {{"scale_attn_weights", false}, {"activation_function", "quick_gelu"}})},
      {"neox no attention bias relu", tiny("gpt_neox", {{"attention_bias", false}, {"hidden_act", "relu"}})},
      {"neox parallel", tiny("gpt_neox")},
      {"neox sequential", tiny("gpt_neox", {{"use_parallel_residual", false}, {"rotary_pct", 1.0}})},
      {"llama gqa llama3",
       tiny("llama",
            {{"head_dim", 6},
             {"attention_bias", true},
             {"mlp_bias", true},
             {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"original_max_position_embeddings", 4}}}})},
      {"llama linear",
       tiny("llama", {{"num_key_value_heads", 4}, {"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}}})},
      {"mistral window", tiny("mistral", {{"sliding_window", 3}})},
      {"bert", tiny("bert")},
  };
}

TEST(HfModel, TokenLocalJacobiansEqualGenericAndRowByRowAutogradInEveryFamily) {
  at::manual_seed(5);  // the probe ids
  for (const auto& [name, config] : family_cases()) {
    RandomWeights weights(7);
    coupling::hf::HfTransformer model(config, weights.source());
    coupling::hf::HfAdapter adapter(model);
    const int64_t tokens = 7;
    const auto states = adapter.residual_states(at::randint(config.vocab, {1, tokens}, at::kLong));
    for (int64_t block = 0; block < config.layers; ++block) {
      const auto x = states[static_cast<size_t>(block)][0];
      auto branch = [&](const at::Tensor& in) { return model->block(block)->residual_branch(in); };
      for (int64_t t2 : {tokens - 1, int64_t{3}}) {
        std::vector<int64_t> inputs;
        for (int64_t t1 = 0; t1 < (config.causal ? t2 + 1 : tokens); ++t1) inputs.push_back(t1);
        const auto local = coupling::jacobians_at_output(adapter, block, x, t2, inputs,
                                                         {coupling::JacobianOptions::Method::kTokenLocal});
        const auto generic =
            coupling::jacobians_at_output(adapter, block, x, t2, inputs, {coupling::JacobianOptions::Method::kGeneric});
        for (int64_t t1 : inputs) {
          const auto reference = engine_support::brute_force_jacobian(branch, x, t1, t2);
          const double scale = reference.abs().max().item<double>();
          // float32 arithmetic on O(1) values through a few dozen operations: 1e-5 of the largest entry.
          EXPECT_LE((local[t1] - reference).abs().max().item<double>(), 1e-5 * std::max(scale, 1.0))
              << name << " block " << block << " J_{" << t1 << "," << t2 << "}";
          EXPECT_LE((generic[t1] - reference).abs().max().item<double>(), 1e-5 * std::max(scale, 1.0)) << name;
          const bool outside_window = config.sliding_window > 0 && t2 - t1 >= config.sliding_window;
          if (outside_window) {
            EXPECT_EQ(scale, 0.0) << name << ": J_{" << t1 << "," << t2 << "} outside the window";
          } else {
            EXPECT_GT(scale, 1e-3) << name << ": a real, non-zero Jacobian J_{" << t1 << "," << t2 << "}";
          }
        }
      }
    }
  }
}

TEST(HfModel, Float32WeightsAreSharedExceptTheLayoutsThatMustBeCopied) {
  // coupling.measure builds the model on a live model's parameters at each measurement
  // (docs/python.md): the ones it reads as they are must share their memory, not be copied.
  const std::map<std::string, std::set<std::string>> copied_by_family = {
      {"gpt2", {"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"}},  // [in, out]
      {"gpt_neox", {"attention.query_key_value.weight", "attention.query_key_value.bias"}},            // fused per head
      {"llama", {}},
      {"mistral", {}},
      {"bert", {}},
  };
  for (const auto& [family, copied_suffixes] : copied_by_family) {
    RandomWeights weights(3);
    coupling::hf::HfTransformer model(tiny(family), weights.source());
    std::vector<at::Tensor> held = model->buffers();
    for (int64_t block = 0; block < model->num_blocks(); ++block) {
      for (const auto& buffer : model->block(block)->buffers()) held.push_back(buffer);
    }
    const std::regex block_prefix(R"(^(h|layers|encoder\.layer)\.[0-9]+\.)");
    std::set<std::string> copied;
    for (const auto& [name, source] : weights.tensors) {
      const bool shared =
          std::any_of(held.begin(), held.end(), [&](const at::Tensor& t) { return t.is_alias_of(source); });
      if (!shared) copied.insert(std::regex_replace(name, block_prefix, ""));
    }
    EXPECT_EQ(copied, copied_suffixes) << family << ": the source tensors the model copied";
  }
}

TEST(HfModel, MatrixFreeProductsAndMeasurementsEqualTheMaterialisedOnesInEveryFamily) {
  at::manual_seed(6);  // the probe ids
  for (const auto& [name, config] : family_cases()) {
    RandomWeights weights(8);
    coupling::hf::HfTransformer model(config, weights.source());
    coupling::hf::HfAdapter adapter(model);
    const auto probes = at::randint(config.vocab, {2, 7}, at::kLong);
    // Products: J X and J^T Y against the token-local J, in chunks of 3 vectors per pass.
    const auto x = adapter.residual_states(probes.narrow(0, 0, 1))[1][0];
    const auto columns = at::randn({config.d_model, 5});
    for (const auto& [t1, t2] : {std::pair<int64_t, int64_t>{6, 6}, {4, 6}}) {
      const auto j = coupling::jacobians_at_output(adapter, 1, x, t2, {t1})[0];
      const auto op = coupling::jacobian_operator(adapter, 1, x, t1, t2, 3 * coupling::replica_bytes(1, 16));
      // float32 sums of 16 terms of size |J| |x|: 1e-5 of the largest product entry.
      const auto expected = at::matmul(j, columns), expected_t = at::matmul(j.t(), columns);
      const double scale = std::max(expected.abs().max().item<double>(), expected_t.abs().max().item<double>());
      EXPECT_LE((op.multiply(columns) - expected).abs().max().item<double>(), 1e-5 * scale) << name;
      EXPECT_LE((op.multiply_transpose(columns) - expected_t).abs().max().item<double>(), 1e-5 * scale) << name;
    }
    // Whole measurements, every coupling set, with and without a band.
    for (int64_t band : {0, 1}) {
      coupling::MeasurementOptions options;
      options.k_grid = {2, 4};
      options.spectrum = coupling::SpectrumMethod::kRandomized;
      options.tokens.mode = coupling::TokenSelection::Mode::kList;
      options.tokens.tokens = {3, -1};
      options.tokens.context_pairs = {{4, -1}};
      options.depth_band = band;
      const auto [difference, where] = test_support::path_difference(adapter, probes, options);
      EXPECT_LE(difference, 1e-3) << name << ": " << where << ", band " << band;
    }
  }
}

TEST(HfModel, ProbesOutsideTheVocabularyOrContextAreRefused) {
  RandomWeights weights(1);
  coupling::hf::HfTransformer model(tiny("gpt2"), weights.source());
  EXPECT_NE(error_of([&] {
              model->block(0)->residual_branch_at_token(at::randn({4, 16}), 1, at::randn({3, 16}), 2);
            }).find("every row of `replaced` must be equal"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              model->residual_states(at::full({1, 4}, 50, at::kLong));
            }).find("outside [0, 50)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              model->residual_states(at::zeros({1, 13}, at::kLong));
            }).find("knows 12 positions"),
            std::string::npos);
}

/// The cases tests/python/hf_reference.py wrote, if the environment names them.
std::vector<fs::path> reference_cases() {
  const char* dir = std::getenv("COUPLING_HF_REFERENCE");
  std::vector<fs::path> cases;
  if (dir == nullptr) return cases;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (fs::exists(entry.path() / "reference.safetensors")) cases.push_back(entry.path());
  }
  std::sort(cases.begin(), cases.end());
  return cases;
}

TEST(HfReference, EveryFamilyMatchesTransformersItself) {
  const auto cases = reference_cases();
  if (cases.empty()) GTEST_SKIP() << "COUPLING_HF_REFERENCE is not set (tests/cli/hf_reference.sh sets it)";
  EXPECT_GE(cases.size(), 8u);
  for (const auto& dir : cases) {
    const coupling::safetensors::SafetensorsFile reference((dir / "reference.safetensors").string());
    coupling::hf::HfDirectory directory(dir.string());
    const auto ids = reference.tensor("input_ids");
    const auto expected = reference.tensor("states");
    // Residual states in float64 against transformers' (float64 weights, eager attention), two
    // ways: as transformers runs, which computes softmax, RMSNorm and rotary angles in float32 in
    // some families (1e-5 relative covers float32 rounding through a few layers), and with those
    // steps in float64 too ("_fp64"), where only float64 rounding separates the two (1e-10).
    coupling::hf::HfTransformer model64(directory.config(), coupling::hf::directory_source(directory), at::kDouble);
    const auto states = model64->residual_states(ids);
    ASSERT_EQ(static_cast<int64_t>(states.size()), expected.size(0)) << dir;
    const auto relative_error = [](const at::Tensor& got, const at::Tensor& want) {
      return (got - want).abs().max().item<double>() / std::max(want.abs().max().item<double>(), 1e-300);
    };
    // The largest relative errors of each comparison, printed for the record.
    double worst[4] = {0, 0, 0, 0};
    for (size_t l = 0; l < states.size(); ++l) {
      const auto index = static_cast<int64_t>(l);
      worst[0] = std::max(worst[0], relative_error(states[l], expected[index]));
      worst[1] = std::max(worst[1], relative_error(states[l], reference.tensor("states_fp64")[index]));
    }
    EXPECT_LE(worst[0], 1e-5) << dir.filename() << " residual states";
    EXPECT_LE(worst[1], 1e-10) << dir.filename() << " residual states, float64 throughout";
    // Block Jacobians of sequence 0: the engine's token-local path (float32 model) and our
    // float64 branch by autograd, against the Jacobian of transformers' own layer module.
    coupling::hf::HfTransformer model32(directory.config(), coupling::hf::directory_source(directory));
    coupling::hf::HfAdapter adapter(model32);
    const int64_t tokens = ids.size(1);
    for (int64_t block = 0; block < directory.config().layers; ++block) {
      const auto full = reference.tensor("jacobian." + std::to_string(block));  // [T, d, T, d]
      const auto full64 = reference.tensor("jacobian_fp64." + std::to_string(block));
      const auto x = expected[block][0], x64 = reference.tensor("states_fp64")[block][0];
      auto branch = [&](const at::Tensor& in) { return model64->block(block)->residual_branch(in); };
      for (int64_t t2 : {tokens - 1, tokens / 2}) {
        std::vector<int64_t> inputs;
        for (int64_t t1 = 0; t1 < (directory.config().causal ? t2 + 1 : tokens); ++t1) inputs.push_back(t1);
        const auto local = coupling::jacobians_at_output(adapter, block, x.to(at::kFloat), t2, inputs);
        for (int64_t t1 : inputs) {
          const auto want = full.select(0, t2).select(1, t1);  // [d, d]: rows = output dims
          const auto ours64 = engine_support::brute_force_jacobian(branch, x64, t1, t2);
          const double error64 = relative_error(ours64, full64.select(0, t2).select(1, t1));
          const double error32 = relative_error(local[t1].to(at::kDouble), want);
          worst[2] = std::max(worst[2], error64), worst[3] = std::max(worst[3], error32);
          EXPECT_LE(error64, 1e-9) << dir.filename() << " block " << block << " J_{" << t1 << "," << t2 << "} float64";
          EXPECT_LE(error32, 1e-4) << dir.filename() << " block " << block << " J_{" << t1 << "," << t2
                                   << "} token-local float32";
        }
      }
    }
    std::printf("%-16s states %.1e (float64 throughout %.1e); J float64 %.1e, token-local float32 %.1e\n",
                dir.filename().c_str(), worst[0], worst[1], worst[2], worst[3]);
  }
}

}  // namespace
