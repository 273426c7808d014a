#include "coupling/models/hf/config.h"

#include "coupling/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

namespace coupling::hf {

const char* const kSupportedFamilies = "gpt2, gpt_neox, llama, mistral, bert";

namespace {

using nlohmann::json;

/// config.json's keys, read with the file named in every error.
class Keys {
 public:
  Keys(const json& object, std::string source) : object_(object), source_(std::move(source)) {}

  const json* find(const std::string& key) const {
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t integer(const std::string& key) const {
    const auto value = optional_integer(key);
    if (!value) throw error(key, "is missing");
    return *value;
  }
  std::optional<int64_t> optional_integer(const std::string& key) const {
    const json* value = find(key);
    if (value == nullptr) return std::nullopt;
    if (!value->is_number_integer()) throw error(key, "must be an integer");
    return value->get<int64_t>();
  }
  int64_t positive(const std::string& key) const { return positive(key, integer(key)); }
  int64_t positive(const std::string& key, int64_t value) const {
    if (value <= 0 || value > kLargestSize)
      throw error(key, fmt::format("must be in [1, {}] (it is {})", kLargestSize, value));
    return value;
  }
  double number(const std::string& key, double fallback) const {
    const json* value = find(key);
    if (value == nullptr) return fallback;
    if (!value->is_number()) throw error(key, "must be a number");
    const double number = value->get<double>();
    if (!std::isfinite(number)) throw error(key, "must be finite");
    return number;
  }
  bool boolean(const std::string& key, bool fallback) const {
    const json* value = find(key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) throw error(key, "must be true or false");
    return value->get<bool>();
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    const json* value = find(key);
    if (value == nullptr) return fallback;
    if (!value->is_string()) throw error(key, "must be a string");
    return value->get<std::string>();
  }
  /// Refuses `key` when present with a value other than `allowed` (an option that changes the math).
  template <class T>
  void require(const std::string& key, const T& allowed, const std::string& why) const {
    const json* value = find(key);
    if (value != nullptr && *value != json(allowed)) {
      throw coupling::ConfigError(fmt::format("{}: {} = {} is not implemented here ({}); only {} is", source_, key,
                                              value->dump(), why, json(allowed).dump()));
    }
  }
  coupling::ConfigError error(const std::string& key, const std::string& what) const {
    return coupling::ConfigError(fmt::format("{}: '{}' {}", source_, key, what));
  }
  const std::string& source() const { return source_; }
  const json& object() const { return object_; }

  /// Sizes beyond this are not a model config (and would overflow shape arithmetic).
  static constexpr int64_t kLargestSize = int64_t{1} << 24;

 private:
  const json& object_;
  std::string source_;
};

Activation activation_named(const std::string& name, const Keys& keys, const std::string& key) {
  if (name == "gelu") return Activation::kGelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return Activation::kGeluTanh;
  if (name == "gelu_fast") return Activation::kGeluFast;
  if (name == "quick_gelu") return Activation::kQuickGelu;
  if (name == "relu") return Activation::kRelu;
  if (name == "silu" || name == "swish") return Activation::kSilu;
  throw keys.error(key, "= \"" + name +
                            "\" is not implemented here: use gelu, gelu_new, gelu_pytorch_tanh, "
                            "gelu_fast, quick_gelu, relu, silu or swish");
}

/// The rotary embedding: transformers 5.x's `rope_parameters`, else the 4.x keys: `rope_scaling`
/// plus the family's own top-level theta key (`rope_theta`; NeoX: `rotary_emb_base`) and, for
/// NeoX, `rotary_pct`. As transformers 5.24, another family's keys are ignored.
Rotary read_rotary(const Keys& keys, int64_t head_dim, const char* theta_key, const char* fraction_key,
                   double default_fraction, int64_t max_positions) {
  const json* parameters = keys.find("rope_parameters");
  const json* scaling = keys.find("rope_scaling");
  if (parameters != nullptr && !parameters->is_object()) throw keys.error("rope_parameters", "must be an object");
  if (scaling != nullptr && !scaling->is_object()) throw keys.error("rope_scaling", "must be an object");
  if (parameters != nullptr && scaling != nullptr) {
    throw keys.error("rope_parameters",
                     "and 'rope_scaling' are both given: keep one (transformers 5.x writes "
                     "rope_parameters, 4.x rope_scaling)");
  }
  static const json kEmpty = json::object();
  const Keys rope(parameters != nullptr ? *parameters
                  : scaling != nullptr  ? *scaling
                                        : kEmpty,
                  keys.source() + (parameters != nullptr ? " rope_parameters" : " rope_scaling"));
  Rotary rotary;
  const double legacy_fraction =
      fraction_key != nullptr ? keys.number(fraction_key, default_fraction) : default_fraction;
  const double fraction = rope.number("partial_rotary_factor", legacy_fraction);
  if (!(fraction > 0.0 && fraction <= 1.0)) throw keys.error("partial_rotary_factor", "must be in (0, 1]");
  rotary.dims = static_cast<int64_t>(static_cast<double>(head_dim) * fraction);  // as transformers: int(head_dim * f)
  if (rotary.dims < 2 || rotary.dims % 2 != 0) {
    throw keys.error("partial_rotary_factor", fmt::format("gives {} rotary dimensions of {}: they must be even and "
                                                          "at least 2",
                                                          rotary.dims, head_dim));
  }
  rotary.theta = rope.number("rope_theta", keys.number(theta_key, 10000.0));
  if (!(rotary.theta > 1.0)) throw keys.error("rope_theta", "must be greater than 1");
  rotary.type = rope.string("rope_type", rope.string("type", "default"));
  if (rotary.type == "default") return rotary;
  if (rotary.type != "linear" && rotary.type != "dynamic" && rotary.type != "llama3") {
    throw rope.error("rope_type", "= \"" + rotary.type +
                                      "\" is not implemented here: use a model with default, linear, "
                                      "dynamic or llama3 rotary scaling");
  }
  if (rope.find("factor") == nullptr) throw rope.error("factor", "is missing: rope_type " + rotary.type + " needs it");
  rotary.factor = rope.number("factor", 1.0);
  if (!(rotary.factor >= 1.0)) throw rope.error("factor", "must be at least 1");
  rotary.original_max_positions = rope.optional_integer("original_max_position_embeddings").value_or(max_positions);
  rope.positive("original_max_position_embeddings", rotary.original_max_positions);
  if (rotary.type == "llama3") {
    rotary.low_freq_factor = rope.number("low_freq_factor", 1.0);
    rotary.high_freq_factor = rope.number("high_freq_factor", 4.0);
    if (!(rotary.low_freq_factor > 0.0 && rotary.high_freq_factor > rotary.low_freq_factor)) {
      throw rope.error("high_freq_factor", "must exceed low_freq_factor, which must be positive");
    }
  }
  return rotary;
}

/// Heads, KV heads and head size; every projection's shape follows from them.
void read_heads(HfConfig& config, const Keys& keys, const std::string& heads_key, int64_t default_kv_heads = 0) {
  config.heads = keys.positive(heads_key);
  // A missing key takes the family's default; null (as MistralConfig) means one per head.
  const int64_t kv_default =
      default_kv_heads > 0 && !keys.object().contains("num_key_value_heads") ? default_kv_heads : config.heads;
  config.kv_heads =
      keys.positive("num_key_value_heads", keys.optional_integer("num_key_value_heads").value_or(kv_default));
  if (config.heads % config.kv_heads != 0) {
    throw keys.error("num_key_value_heads",
                     fmt::format("({}) must divide {} ({})", config.kv_heads, heads_key, config.heads));
  }
  const auto explicit_head_dim = keys.optional_integer("head_dim");
  if (explicit_head_dim) {
    config.head_dim = keys.positive("head_dim", *explicit_head_dim);
  } else {
    if (config.d_model % config.heads != 0) {
      throw keys.error(heads_key, fmt::format("({}) must divide the hidden size ({})", config.heads, config.d_model));
    }
    config.head_dim = config.d_model / config.heads;
  }
  if (config.heads * config.head_dim > Keys::kLargestSize) throw keys.error("head_dim", "times the heads is too large");
}

HfConfig read_gpt2(const Keys& keys) {
  HfConfig config;
  config.vocab = keys.positive("vocab_size");
  config.d_model = keys.positive("n_embd");
  config.layers = keys.positive("n_layer");
  config.heads = keys.positive("n_head");  // GPT-2 has no head_dim or key-value groups
  if (config.d_model % config.heads != 0) {
    throw keys.error("n_head", fmt::format("({}) must divide the hidden size ({})", config.heads, config.d_model));
  }
  config.kv_heads = config.heads;
  config.head_dim = config.d_model / config.heads;
  config.intermediate = keys.positive("n_inner", keys.optional_integer("n_inner").value_or(4 * config.d_model));
  config.max_positions = keys.positive("n_positions");
  config.learned_positions = true;
  config.norm_eps = keys.number("layer_norm_epsilon", 1e-5);
  config.activation = activation_named(keys.string("activation_function", "gelu_new"), keys, "activation_function");
  config.scale_attention = keys.boolean("scale_attn_weights", true);
  keys.require("scale_attn_by_inverse_layer_idx", false, "it scales each layer's scores by 1/(layer + 1)");
  keys.require("add_cross_attention", false, "cross-attention needs an encoder");
  return config;
}

/// The sizes every family but GPT-2 names alike (hidden_size, num_attention_heads, ...).
/// `plain_heads`: the family's heads split hidden_size evenly, without key-value groups.
HfConfig read_sizes(const Keys& keys, const char* family, bool plain_heads, int64_t default_kv_heads = 0) {
  HfConfig config;
  config.vocab = keys.positive("vocab_size");
  config.d_model = keys.positive("hidden_size");
  config.layers = keys.positive("num_hidden_layers");
  read_heads(config, keys, "num_attention_heads", default_kv_heads);
  if (plain_heads && (config.kv_heads != config.heads || config.head_dim * config.heads != config.d_model)) {
    throw keys.error("num_attention_heads",
                     std::string("must split the hidden size evenly, without key-value groups, in ") + family);
  }
  config.intermediate = keys.positive("intermediate_size");
  config.max_positions = keys.positive("max_position_embeddings");
  return config;
}

HfConfig read_gpt_neox(const Keys& keys) {
  HfConfig config = read_sizes(keys, "GPT-NeoX", true);
  config.norm_eps = keys.number("layer_norm_eps", 1e-5);
  config.activation = activation_named(keys.string("hidden_act", "gelu"), keys, "hidden_act");
  config.layout = keys.boolean("use_parallel_residual", true) ? BlockLayout::kParallelPreNorm : BlockLayout::kPreNorm;
  config.attention_bias = keys.boolean("attention_bias", true);
  config.rotary = read_rotary(keys, config.head_dim, "rotary_emb_base", "rotary_pct", 0.25, config.max_positions);
  return config;
}

/// MistralConfig's defaults for keys a config.json may leave out.
constexpr int64_t kMistralDefaultKvHeads = 8;
constexpr int64_t kMistralDefaultWindow = 4096;

HfConfig read_llama(const Keys& keys, bool mistral) {
  HfConfig config = read_sizes(keys, "Llama", false, mistral ? kMistralDefaultKvHeads : 0);
  config.rms_norm = true;
  config.norm_eps = keys.number("rms_norm_eps", 1e-6);
  config.activation = activation_named(keys.string("hidden_act", "silu"), keys, "hidden_act");
  config.gated_mlp = true;
  // Mistral's projections never have biases (transformers 5.24 ignores these keys there).
  config.attention_bias = !mistral && keys.boolean("attention_bias", false);
  config.mlp_bias = !mistral && keys.boolean("mlp_bias", false);
  config.rotary = read_rotary(keys, config.head_dim, "rope_theta", nullptr, 1.0, config.max_positions);
  // transformers applies a Llama partial_rotary_factor only with some rope types: refused in either place.
  if (config.rotary.dims != config.head_dim ||
      (keys.find("partial_rotary_factor") != nullptr && keys.number("partial_rotary_factor", 1.0) != 1.0)) {
    throw keys.error("partial_rotary_factor",
                     "is not implemented for Llama/Mistral (their rotary covers the whole head)");
  }
  if (mistral) {
    // As transformers: a missing key means the default window, null means none.
    const auto window = keys.optional_integer("sliding_window");
    config.sliding_window = keys.object().contains("sliding_window") ? window.value_or(0) : kMistralDefaultWindow;
    if (window) keys.positive("sliding_window", *window);
  } else if (keys.find("sliding_window") != nullptr) {
    throw keys.error("sliding_window", "is not a Llama option: a windowed model should say model_type \"mistral\"");
  }
  return config;
}

HfConfig read_bert(const Keys& keys) {
  HfConfig config = read_sizes(keys, "BERT", true);
  config.type_vocab = keys.positive("type_vocab_size", keys.optional_integer("type_vocab_size").value_or(2));
  config.learned_positions = true;
  config.embedding_norm = true;
  config.norm_eps = keys.number("layer_norm_eps", 1e-12);
  config.activation = activation_named(keys.string("hidden_act", "gelu"), keys, "hidden_act");
  config.layout = BlockLayout::kPostNorm;
  config.causal = false;
  keys.require("position_embedding_type", "absolute", "relative position scores");
  keys.require("is_decoder", false, "a BERT decoder attends causally and across");
  keys.require("add_cross_attention", false, "cross-attention needs an encoder");
  return config;
}

const char* layout_name(BlockLayout layout) {
  switch (layout) {
    case BlockLayout::kPreNorm:
      return "pre-norm";
    case BlockLayout::kParallelPreNorm:
      return "parallel";
    case BlockLayout::kPostNorm:
      return "post-norm";
  }
  return "?";
}

const char* activation_name(Activation activation) {
  switch (activation) {
    case Activation::kGelu:
      return "gelu";
    case Activation::kGeluTanh:
      return "gelu_tanh";
    case Activation::kGeluFast:
      return "gelu_fast";
    case Activation::kQuickGelu:
      return "quick_gelu";
    case Activation::kRelu:
      return "relu";
    case Activation::kSilu:
      return "silu";
  }
  return "?";
}

}  // namespace

int64_t HfConfig::block_parameters() const {
  const int64_t d = d_model, q_rows = heads * head_dim, kv_rows = kv_heads * head_dim;
  const int64_t attention = d * (q_rows + 2 * kv_rows) + q_rows * d + (attention_bias ? q_rows + 2 * kv_rows + d : 0);
  const int64_t mlp = (gated_mlp ? 3 : 2) * d * intermediate + (mlp_bias ? intermediate + d : 0);
  const int64_t norms = (rms_norm ? 2 : 4) * d;
  return attention + mlp + norms;
}

int64_t HfConfig::streamed_bytes() const {
  // The largest stored tensor: an MLP matrix, or GPT-2's and GPT-NeoX's fused QKV.
  const int64_t largest = std::max(d_model * intermediate, 3 * d_model * heads * head_dim);
  return 4 * (block_parameters() + largest);
}

std::string HfConfig::summary() const {
  std::string text = fmt::format(
      "model_type={} vocab={} d_model={} layers={} heads={} kv_heads={} head_dim={} intermediate={} max_positions={} "
      "layout={} norm={} norm_eps={} activation={}{} attention_bias={} mlp_bias={} causal={} scale_attention={}",
      model_type, vocab, d_model, layers, heads, kv_heads, head_dim, intermediate, max_positions, layout_name(layout),
      rms_norm ? "rms" : "layer", norm_eps, activation_name(activation), gated_mlp ? " gated_mlp=true" : "",
      attention_bias, mlp_bias, causal, scale_attention);
  if (learned_positions) text += fmt::format(" learned_positions=true");
  if (embedding_norm) text += fmt::format(" embedding_norm=true type_vocab={}", type_vocab);
  if (sliding_window > 0) text += fmt::format(" sliding_window={}", sliding_window);
  if (rotary.dims > 0) {
    text += fmt::format(" rotary_dims={} rope_theta={} rope_type={}", rotary.dims, rotary.theta, rotary.type);
    if (rotary.type != "default") {
      text +=
          fmt::format(" rope_factor={} rope_original_max_positions={}", rotary.factor, rotary.original_max_positions);
    }
    if (rotary.type == "llama3") {
      text += fmt::format(" rope_low_freq_factor={} rope_high_freq_factor={}", rotary.low_freq_factor,
                          rotary.high_freq_factor);
    }
  }
  return text;
}

void HfConfig::check_probes(int64_t tokens, int64_t smallest_id, int64_t largest_id) const {
  if (smallest_id < 0 || largest_id >= vocab) {
    throw coupling::ConfigError(
        fmt::format("a probe token id is outside [0, {}), the vocabulary of this {} model: "
                    "tokenize the probes with this model's tokenizer",
                    vocab, model_type));
  }
  // Dynamic rotary scaling changes the frequencies beyond the trained context.
  const bool dynamic = rotary.dims > 0 && rotary.type == "dynamic";
  const int64_t known = dynamic ? std::min(max_positions, rotary.original_max_positions) : max_positions;
  if (tokens > known) {
    throw coupling::ConfigError(
        fmt::format("the probes have {} tokens but this {} model knows {} positions{}: use "
                    "shorter probes",
                    tokens, model_type, known, dynamic ? " (dynamic rotary scaling changes beyond them)" : ""));
  }
}

HfConfig parse_hf_config(const std::string& json_text, const std::string& source) {
  const json document = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded() || !document.is_object()) {
    throw coupling::ConfigError(source + " is not a JSON object: is it a Hugging Face config.json?");
  }
  const Keys keys(document, source);
  if (keys.find("quantization_config") != nullptr) {
    throw keys.error("quantization_config",
                     "says the weights are quantized, which libcoupling does not read: "
                     "give the unquantized model");
  }
  const std::string model_type = keys.string("model_type", "");
  HfConfig config;
  if (model_type == "gpt2") {
    config = read_gpt2(keys);
  } else if (model_type == "gpt_neox") {
    config = read_gpt_neox(keys);
  } else if (model_type == "llama" || model_type == "mistral") {
    config = read_llama(keys, model_type == "mistral");
  } else if (model_type == "bert") {
    config = read_bert(keys);
  } else {
    throw coupling::ConfigError(
        fmt::format("{}: model_type \"{}\" is not a family libcoupling reads ({}): export the model to TorchScript and "
                    "measure it as a TorchScriptModel (docs/analysis.md)",
                    source, model_type, kSupportedFamilies));
  }
  config.model_type = model_type;
  return config;
}

}  // namespace coupling::hf
