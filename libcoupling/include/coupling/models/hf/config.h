// The architecture of a Hugging Face model, read from its config.json (docs/architecture.md,
// "Hugging Face families"). Kept free of LibTorch so the parser of outside files can be fuzzed.
//
// config.json's `model_type` decides the family: gpt2, gpt_neox, llama, mistral (Llama's block
// with a sliding window) or bert. Both key styles are read: the transformers 4.x keys that
// released checkpoints carry (rope_theta, rope_scaling, rotary_pct, rotary_emb_base) and the 5.x
// `rope_parameters` object. An option that changes the math in a way this code does not
// implement is refused by name, never computed another way.
#pragma once

#include <cstdint>
#include <string>

namespace coupling::hf {

/// How a block arranges its norms and residuals (f = block(x) - x in every case).
enum class BlockLayout {
  kPreNorm,          ///< a = Attn(N1(x)), f = a + MLP(N2(x + a))          (GPT-2, Llama, NeoX sequential)
  kParallelPreNorm,  ///< f = Attn(N1(x)) + MLP(N2(x))                       (NeoX parallel residual)
  kPostNorm,         ///< h = N1(x + Attn(x)), f = N2(h + MLP(h)) - x        (BERT)
};

/// kGeluTanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); kGeluFast: the same with the
/// constant 0.7978845608 (transformers' FastGELUActivation).
enum class Activation { kGelu, kGeluTanh, kGeluFast, kQuickGelu, kRelu, kSilu };

/// Rotary position embedding of the first `dims` dimensions of every head (0: none).
struct Rotary {
  int64_t dims = 0;
  double theta = 10000.0;
  std::string type = "default";  ///< default, linear, dynamic (= default within the trained context), llama3
  double factor = 1.0;
  double low_freq_factor = 1.0;        ///< llama3
  double high_freq_factor = 4.0;       ///< llama3
  int64_t original_max_positions = 0;  ///< llama3
};

struct HfConfig {
  std::string model_type;  ///< as in config.json
  int64_t vocab = 0;
  int64_t d_model = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;  ///< < heads: grouped-query attention
  int64_t head_dim = 0;
  int64_t intermediate = 0;
  int64_t max_positions = 0;
  int64_t type_vocab = 0;          ///< BERT's token types (type 0 is added to every token)
  bool learned_positions = false;  ///< GPT-2, BERT: a position embedding added in X^0
  bool embedding_norm = false;     ///< BERT: X^0 is after the embedding LayerNorm
  bool rms_norm = false;           ///< Llama/Mistral: RMSNorm without bias; else LayerNorm
  double norm_eps = 1e-5;
  BlockLayout layout = BlockLayout::kPreNorm;
  Activation activation = Activation::kGelu;
  bool gated_mlp = false;      ///< Llama: down(act(gate(x)) * up(x))
  bool attention_bias = true;  ///< on the q/k/v and output projections
  bool mlp_bias = true;
  bool causal = true;
  bool scale_attention = true;  ///< scores / sqrt(head_dim); GPT-2's scale_attn_weights = false: none
  int64_t sliding_window = 0;   ///< Mistral: a query sees the keys of the last `sliding_window` tokens; 0: all
  Rotary rotary;

  /// One line naming every field, e.g. for the log's model_config (equal lines: same architecture).
  std::string summary() const;
  /// Parameters of one block (attention, MLP, norms, biases).
  int64_t block_parameters() const;
  /// What a streamed model holds (bytes): one block in float32 and, while it is built, its
  /// largest stored tensor (counted at 4 bytes an element, the widest dtype it converts from).
  int64_t streamed_bytes() const;
  /// Throws coupling::ConfigError unless probes of `tokens` tokens with ids in
  /// [smallest_id, largest_id] fit the vocabulary and the positions the model knows.
  void check_probes(int64_t tokens, int64_t smallest_id, int64_t largest_id) const;
};

/// The families this code implements, for messages: "gpt2, gpt_neox, llama, mistral, bert".
extern const char* const kSupportedFamilies;

/// Parses config.json text. `source` names the file in messages. Throws coupling::ConfigError
/// for another family (listing the supported ones and pointing to the TorchScript route), a
/// missing or mistyped key, or an option this code does not implement (named).
HfConfig parse_hf_config(const std::string& json_text, const std::string& source);

}  // namespace coupling::hf
