#include "coupling/models/hf/model.h"

#include "coupling/error.h"
#include "coupling/models/hf/directory.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <limits>

namespace coupling::hf {
namespace {

/// The checkpoint names of one block's tensors, by family (without the model-class prefix).
std::string block_prefix(const HfConfig& config, int64_t index) {
  if (config.model_type == "gpt2") return fmt::format("h.{}.", index);
  if (config.model_type == "bert") return fmt::format("encoder.layer.{}.", index);
  return fmt::format("layers.{}.", index);  // gpt_neox, llama, mistral
}

/// The token embedding's name, which also tells the model-class prefix of a checkpoint.
std::string token_embedding_name(const HfConfig& config) {
  if (config.model_type == "gpt2") return "wte.weight";
  if (config.model_type == "gpt_neox") return "embed_in.weight";
  if (config.model_type == "bert") return "embeddings.word_embeddings.weight";
  return "embed_tokens.weight";  // llama, mistral
}

/// Rotary frequencies [dims / 2] in `dtype`, with the operations of transformers
/// (modeling_rope_utils), which computes them in float32: the same numbers for a float32 model.
at::Tensor rotary_frequencies(const Rotary& rotary, c10::ScalarType dtype) {
  const auto exponents = at::arange(0, rotary.dims, 2, at::kLong).to(dtype) / static_cast<double>(rotary.dims);
  auto inv_freq = 1.0 / at::pow(rotary.theta, exponents);
  if (rotary.type == "linear") return inv_freq / rotary.factor;
  if (rotary.type != "llama3") return inv_freq;  // default; dynamic equals it within the trained context
  const double old_context = static_cast<double>(rotary.original_max_positions);
  const double low_freq_wavelen = old_context / rotary.low_freq_factor;
  const double high_freq_wavelen = old_context / rotary.high_freq_factor;
  const auto wavelen = 2.0 * M_PI / inv_freq;
  auto scaled = at::where(wavelen > low_freq_wavelen, inv_freq / rotary.factor, inv_freq);
  const auto smooth =
      (old_context / wavelen - rotary.low_freq_factor) / (rotary.high_freq_factor - rotary.low_freq_factor);
  const auto smoothed = (1 - smooth) * scaled / rotary.factor + smooth * scaled;
  const auto medium =
      at::logical_not(wavelen < high_freq_wavelen).logical_and(at::logical_not(wavelen > low_freq_wavelen));
  return at::where(medium, smoothed, scaled);
}

/// x's last dimension rotated by the angles positions x inv_freq: x cos + rotate_half(x) sin on
/// the first 2 * inv_freq.size(0) dimensions, the rest passed through.
at::Tensor rotate(const at::Tensor& x, const at::Tensor& inv_freq, const at::Tensor& positions) {
  const int64_t dims = 2 * inv_freq.size(0);
  // [..., dims / 2] angles in the model's dtype (transformers: float32), one head axis.
  const auto angles = positions.to(inv_freq.scalar_type()).unsqueeze(-1) * inv_freq;
  const auto doubled = at::cat({angles, angles}, -1);
  const auto cos = doubled.cos().unsqueeze(-2);
  const auto sin = doubled.sin().unsqueeze(-2);
  const auto rotary = x.narrow(-1, 0, dims);
  const auto half = dims / 2;
  const auto rotated_half = at::cat({-rotary.narrow(-1, half, half), rotary.narrow(-1, 0, half)}, -1);
  const auto result = rotary * cos + rotated_half * sin;
  if (dims == x.size(-1)) return result;
  return at::cat({result, x.narrow(-1, dims, x.size(-1) - dims)}, -1);
}

at::Tensor activate(Activation activation, const at::Tensor& x) {
  switch (activation) {
    case Activation::kGelu:
      return at::gelu(x);
    case Activation::kGeluTanh:
      return at::gelu(x, "tanh");
    case Activation::kGeluFast:
      return 0.5 * x * (1.0 + at::tanh(0.7978845608 * x * (1.0 + 0.044715 * x * x)));
    case Activation::kQuickGelu:
      return x * at::sigmoid(1.702 * x);
    case Activation::kRelu:
      return at::relu(x);
    case Activation::kSilu:
      return at::silu(x);
  }
  return x;
}

/// x W^T for an x whose rows are equal in value (the engine's replicas of one token): the
/// product is computed for one row and broadcast, while the backward pass still gives every row
/// its own gradient. This halves the arithmetic of a token-local Jacobian (the forward of the d
/// replicas was all repeats).
struct SharedRowsMatmul : public torch::autograd::Function<SharedRowsMatmul> {
  static at::Tensor forward(torch::autograd::AutogradContext* context, const at::Tensor& x, const at::Tensor& weight) {
    context->save_for_backward({weight});
    const auto row = at::linear(x.narrow(0, 0, 1), weight);
    return row.expand({x.size(0), row.size(1)});
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* context,
                                               torch::autograd::tensor_list gradients) {
    return {gradients[0].matmul(context->get_saved_variables()[0]), at::Tensor()};
  }
};

/// A linear layer on [..., in] (no bias when `bias` is undefined); `shared_rows`: x is [B, in]
/// with equal rows (SharedRowsMatmul).
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, bool shared_rows) {
  if (!shared_rows) return at::linear(x, weight, bias);
  const auto product = SharedRowsMatmul::apply(x, weight);
  return bias.defined() ? product + bias : product;
}

/// Reads `name` from `source` in `dtype`, or an undefined tensor when `present` is false.
at::Tensor read(const TensorSource& source, const std::string& name, const std::vector<int64_t>& shape,
                c10::ScalarType dtype, bool present = true) {
  return present ? source(name, shape).to(dtype).contiguous() : at::Tensor();
}

/// The model-class prefix of a directory's tensor names, found from the token embedding's name.
std::string weight_prefix(const HfDirectory& directory) {
  const std::string embedding = token_embedding_name(directory.config());
  std::string prefix;
  bool found = false;
  for (const auto& name : directory.names()) {
    if (name.size() < embedding.size() ||
        name.compare(name.size() - embedding.size(), embedding.size(), embedding) != 0) {
      continue;
    }
    const std::string candidate = name.substr(0, name.size() - embedding.size());
    if ((candidate.empty() || candidate.back() == '.') && (!found || candidate.size() < prefix.size())) {
      prefix = candidate;
      found = true;
    }
  }
  if (!found) {
    throw coupling::DataError(
        fmt::format("{} has no tensor named ...{}: its weights are not those of the {} model its "
                    "config.json describes",
                    directory.dir(), embedding, directory.config().model_type));
  }
  return prefix;
}

}  // namespace

TensorSource directory_source(const HfDirectory& directory) {
  return [&directory, prefix = weight_prefix(directory)](const std::string& name, const std::vector<int64_t>& shape) {
    return directory.tensor(prefix + name, shape);
  };
}

TensorSource directory_checker(const HfDirectory& directory) {
  return [&directory, prefix = weight_prefix(directory)](const std::string& name, const std::vector<int64_t>& shape) {
    directory.check(prefix + name, shape);
    return at::empty(shape, at::TensorOptions().device(c10::kMeta));
  };
}

HfBlockImpl::HfBlockImpl(const HfConfig& config, const TensorSource& source, int64_t index, c10::ScalarType dtype)
    : config_(config) {
  const int64_t d = config.d_model, inner = config.intermediate;
  const int64_t q_rows = config.heads * config.head_dim, kv_rows = config.kv_heads * config.head_dim;
  const std::string p = block_prefix(config, index);
  const std::string& family = config.model_type;
  auto get = [&](const std::string& name, const std::vector<int64_t>& shape, bool present = true) {
    return read(source, p + name, shape, dtype, present);
  };
  if (family == "gpt2") {  // Conv1D weights are stored [in, out]; c_attn fuses q, k, v along out
    norm1_weight_ = get("ln_1.weight", {d}), norm1_bias_ = get("ln_1.bias", {d});
    norm2_weight_ = get("ln_2.weight", {d}), norm2_bias_ = get("ln_2.bias", {d});
    const auto qkv = get("attn.c_attn.weight", {d, 3 * d}).t().chunk(3, 0);
    const auto qkv_bias = get("attn.c_attn.bias", {3 * d}).chunk(3, 0);
    q_weight_ = qkv[0], k_weight_ = qkv[1], v_weight_ = qkv[2];
    q_bias_ = qkv_bias[0], k_bias_ = qkv_bias[1], v_bias_ = qkv_bias[2];
    o_weight_ = get("attn.c_proj.weight", {d, d}).t(), o_bias_ = get("attn.c_proj.bias", {d});
    up_weight_ = get("mlp.c_fc.weight", {d, inner}).t(), up_bias_ = get("mlp.c_fc.bias", {inner});
    down_weight_ = get("mlp.c_proj.weight", {inner, d}).t(), down_bias_ = get("mlp.c_proj.bias", {d});
  } else if (family == "gpt_neox") {  // query_key_value: per head [q; k; v] along out
    const bool bias = config.attention_bias;
    norm1_weight_ = get("input_layernorm.weight", {d}), norm1_bias_ = get("input_layernorm.bias", {d});
    norm2_weight_ = get("post_attention_layernorm.weight", {d}),
    norm2_bias_ = get("post_attention_layernorm.bias", {d});
    const auto qkv = get("attention.query_key_value.weight", {3 * d, d}).view({config.heads, 3, config.head_dim, d});
    q_weight_ = qkv.select(1, 0).reshape({d, d}), k_weight_ = qkv.select(1, 1).reshape({d, d});
    v_weight_ = qkv.select(1, 2).reshape({d, d});
    if (bias) {
      const auto qkv_bias = get("attention.query_key_value.bias", {3 * d}).view({config.heads, 3, config.head_dim});
      q_bias_ = qkv_bias.select(1, 0).reshape({d}), k_bias_ = qkv_bias.select(1, 1).reshape({d});
      v_bias_ = qkv_bias.select(1, 2).reshape({d});
    }
    o_weight_ = get("attention.dense.weight", {d, d}), o_bias_ = get("attention.dense.bias", {d}, bias);
    up_weight_ = get("mlp.dense_h_to_4h.weight", {inner, d}), up_bias_ = get("mlp.dense_h_to_4h.bias", {inner});
    down_weight_ = get("mlp.dense_4h_to_h.weight", {d, inner}), down_bias_ = get("mlp.dense_4h_to_h.bias", {d});
  } else if (family == "bert") {
    norm1_weight_ = get("attention.output.LayerNorm.weight", {d});
    norm1_bias_ = get("attention.output.LayerNorm.bias", {d});
    norm2_weight_ = get("output.LayerNorm.weight", {d}), norm2_bias_ = get("output.LayerNorm.bias", {d});
    q_weight_ = get("attention.self.query.weight", {d, d}), q_bias_ = get("attention.self.query.bias", {d});
    k_weight_ = get("attention.self.key.weight", {d, d}), k_bias_ = get("attention.self.key.bias", {d});
    v_weight_ = get("attention.self.value.weight", {d, d}), v_bias_ = get("attention.self.value.bias", {d});
    o_weight_ = get("attention.output.dense.weight", {d, d}), o_bias_ = get("attention.output.dense.bias", {d});
    up_weight_ = get("intermediate.dense.weight", {inner, d}), up_bias_ = get("intermediate.dense.bias", {inner});
    down_weight_ = get("output.dense.weight", {d, inner}), down_bias_ = get("output.dense.bias", {d});
  } else {  // llama, mistral
    const bool bias = config.attention_bias, mlp_bias = config.mlp_bias;
    norm1_weight_ = get("input_layernorm.weight", {d});
    norm2_weight_ = get("post_attention_layernorm.weight", {d});
    q_weight_ = get("self_attn.q_proj.weight", {q_rows, d}), q_bias_ = get("self_attn.q_proj.bias", {q_rows}, bias);
    k_weight_ = get("self_attn.k_proj.weight", {kv_rows, d}), k_bias_ = get("self_attn.k_proj.bias", {kv_rows}, bias);
    v_weight_ = get("self_attn.v_proj.weight", {kv_rows, d}), v_bias_ = get("self_attn.v_proj.bias", {kv_rows}, bias);
    o_weight_ = get("self_attn.o_proj.weight", {d, q_rows}), o_bias_ = get("self_attn.o_proj.bias", {d}, bias);
    gate_weight_ = get("mlp.gate_proj.weight", {inner, d}), gate_bias_ = get("mlp.gate_proj.bias", {inner}, mlp_bias);
    up_weight_ = get("mlp.up_proj.weight", {inner, d}), up_bias_ = get("mlp.up_proj.bias", {inner}, mlp_bias);
    down_weight_ = get("mlp.down_proj.weight", {d, inner}), down_bias_ = get("mlp.down_proj.bias", {d}, mlp_bias);
  }
  if (config.rotary.dims > 0) inv_freq_ = rotary_frequencies(config.rotary, dtype);
  // Buffers (frozen weights) move with .to(device); absent biases stay undefined.
  int64_t count = 0;
  for (at::Tensor* tensor : {&norm1_weight_, &norm1_bias_, &norm2_weight_, &norm2_bias_, &q_weight_, &q_bias_,
                             &k_weight_, &k_bias_, &v_weight_, &v_bias_, &o_weight_, &o_bias_, &up_weight_, &up_bias_,
                             &gate_weight_, &gate_bias_, &down_weight_, &down_bias_, &inv_freq_}) {
    if (tensor->defined()) *tensor = register_buffer("tensor" + std::to_string(count++), tensor->contiguous());
  }
}

at::Tensor HfBlockImpl::norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) const {
  if (!config_.rms_norm) return at::layer_norm(x, {config_.d_model}, weight, bias, config_.norm_eps);
  return weight * (x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + config_.norm_eps));
}

at::Tensor HfBlockImpl::mlp(const at::Tensor& x, bool shared_rows) const {
  const auto up = linear(x, up_weight_, up_bias_, shared_rows);
  const auto hidden = config_.gated_mlp
                          ? activate(config_.activation, linear(x, gate_weight_, gate_bias_, shared_rows)) * up
                          : activate(config_.activation, up);
  return linear(hidden, down_weight_, down_bias_, shared_rows);
}

at::Tensor HfBlockImpl::finish(const at::Tensor& x, const at::Tensor& a, bool shared_rows) const {
  switch (config_.layout) {
    case BlockLayout::kPreNorm:
      return a + mlp(norm(x + a, norm2_weight_, norm2_bias_), shared_rows);
    case BlockLayout::kParallelPreNorm:
      return a + mlp(norm(x, norm2_weight_, norm2_bias_), shared_rows);
    case BlockLayout::kPostNorm: {
      const auto h = norm(x + a, norm1_weight_, norm1_bias_);
      return norm(h + mlp(h, shared_rows), norm2_weight_, norm2_bias_) - x;
    }
  }
  return a;
}

HfBlockImpl::Projections HfBlockImpl::project(const at::Tensor& attention_input, const at::Tensor& positions,
                                              bool shared_rows) {
  auto split = [&](const at::Tensor& t, int64_t heads) {
    auto sizes = t.sizes().vec();
    sizes.back() = heads;
    sizes.push_back(config_.head_dim);
    return t.reshape(sizes);
  };
  Projections p{split(linear(attention_input, q_weight_, q_bias_, shared_rows), config_.heads),
                split(linear(attention_input, k_weight_, k_bias_, shared_rows), config_.kv_heads),
                split(linear(attention_input, v_weight_, v_bias_, shared_rows), config_.kv_heads)};
  if (inv_freq_.defined()) {
    p.query = rotate(p.query, inv_freq_, positions);
    p.key = rotate(p.key, inv_freq_, positions);
  }
  return p;
}

std::vector<int64_t> HfBlockImpl::projection_versions(const at::Tensor& x) const {
  std::vector<int64_t> versions{x._version()};
  for (const at::Tensor* t :
       {&norm1_weight_, &norm1_bias_, &q_weight_, &q_bias_, &k_weight_, &k_bias_, &v_weight_, &v_bias_, &inv_freq_}) {
    versions.push_back(t->defined() ? t->_version() : -1);
  }
  return versions;
}

const HfBlockImpl::Projections& HfBlockImpl::fixed_projections(const at::Tensor& x, int64_t first, int64_t last) {
  auto versions = projection_versions(x);
  auto& cache = fixed_cache_;
  if (cache.x.defined() && cache.x.is_same(x) && cache.first == first && cache.last == last &&
      cache.versions == versions) {
    return cache.value;
  }
  const auto rows = x.narrow(0, first, last - first + 1);
  const bool post_norm = config_.layout == BlockLayout::kPostNorm;
  cache.value = project(post_norm ? rows : norm(rows, norm1_weight_, norm1_bias_),
                        at::arange(first, last + 1, x.options().dtype(at::kLong)), false);
  cache.x = x, cache.first = first, cache.last = last, cache.versions = std::move(versions);
  return cache.value;
}

double HfBlockImpl::attention_scale() const {
  return config_.scale_attention ? 1.0 / std::sqrt(static_cast<double>(config_.head_dim)) : 1.0;
}

std::pair<int64_t, int64_t> HfBlockImpl::visible_keys(int64_t position, int64_t tokens) const {
  if (!config_.causal) return {0, tokens - 1};
  const int64_t first = config_.sliding_window > 0 ? std::max<int64_t>(0, position - config_.sliding_window + 1) : 0;
  return {first, position};
}

at::Tensor HfBlockImpl::residual_branch(const at::Tensor& x) {
  const int64_t batch = x.size(0), tokens = x.size(1);
  const auto attention_input = config_.layout == BlockLayout::kPostNorm ? x : norm(x, norm1_weight_, norm1_bias_);
  const auto p = project(attention_input, at::arange(tokens, x.options().dtype(at::kLong)), false);
  const int64_t group = config_.heads / config_.kv_heads;
  const auto query = p.query.transpose(1, 2);                              // [B, H, T, hd]
  const auto key = p.key.repeat_interleave(group, 2).transpose(1, 2);      // [B, H, T, hd]
  const auto value = p.value.repeat_interleave(group, 2).transpose(1, 2);  // [B, H, T, hd]
  auto scores = at::matmul(query, key.transpose(-2, -1)) * attention_scale();
  if (config_.causal) {
    auto hidden = at::ones({tokens, tokens}, x.options().dtype(at::kBool)).triu(1);  // key after query
    if (config_.sliding_window > 0) hidden = hidden.logical_or(at::ones_like(hidden).tril(-config_.sliding_window));
    scores = scores.masked_fill(hidden, -std::numeric_limits<double>::infinity());
  }
  const auto mixed = at::matmul(at::softmax(scores, -1), value).transpose(1, 2).reshape({batch, tokens, -1});
  return finish(x, at::linear(mixed, o_weight_, o_bias_), false);
}

at::Tensor HfBlockImpl::residual_branch_at_token(const at::Tensor& x, int64_t input_token, const at::Tensor& replaced,
                                                 int64_t output_token) {
  const int64_t tokens = x.size(0), batch = replaced.size(0);
  if (output_token < 0 || output_token >= tokens || input_token < 0 || input_token >= tokens ||
      (config_.causal && input_token > output_token)) {
    throw coupling::ConfigError(
        fmt::format("token {} cannot influence token {} in this block (causal zero or out of "
                    "range)",
                    input_token, output_token));
  }
  // Equal rows, NaN counting as equal to NaN: a diverged checkpoint's replicas are NaN alike.
  const auto first_row = replaced.narrow(0, 0, 1).expand_as(replaced);
  if (!replaced.eq(first_row).logical_or(replaced.isnan().logical_and(first_row.isnan())).all().item<bool>()) {
    throw coupling::ConfigError(
        "residual_branch_at_token takes replicas of one token: every row of `replaced` must be "
        "equal (the coupling engine passes them so)");
  }
  const auto [first, last] = visible_keys(output_token, tokens);
  if (input_token < first) {  // outside the window: f at the output token does not depend on it
    const auto unchanged = residual_branch(x.unsqueeze(0)).select(1, output_token);
    return unchanged.expand({batch, x.size(1)}) + 0.0 * replaced;
  }
  const bool post_norm = config_.layout == BlockLayout::kPostNorm;
  const auto& fixed = fixed_projections(x, first, last);
  // Every value from here on is the same in each row of `replaced` (checked above).
  const auto varied = project(post_norm ? replaced : norm(replaced, norm1_weight_, norm1_bias_),
                              at::full({batch}, input_token, x.options().dtype(at::kLong)), true);
  const int64_t group = config_.heads / config_.kv_heads, at_input = input_token - first;
  const auto fixed_keys = fixed.key.repeat_interleave(group, 1), fixed_values = fixed.value.repeat_interleave(group, 1);
  const auto varied_keys = varied.key.repeat_interleave(group, 1),
             varied_values = varied.value.repeat_interleave(group, 1);
  const auto query =
      input_token == output_token
          ? varied.query  // [B, H, hd]
          : fixed.query.select(0, output_token - first).unsqueeze(0).expand({batch, config_.heads, config_.head_dim});
  const double scale = attention_scale();
  // Scores against the fixed keys in one GEMM per head, then the input token's column swapped
  // for its varied key: no [B, n, d] tensor is built.
  const auto fixed_scores = at::einsum("bhe,nhe->bhn", {query, fixed_keys}) * scale;  // [B, H, n]
  const auto varied_score = (query * varied_keys).sum(-1, /*keepdim=*/true) * scale;  // [B, H, 1]
  const int64_t n = last - first + 1;
  const auto scores = at::cat(
      {fixed_scores.narrow(2, 0, at_input), varied_score, fixed_scores.narrow(2, at_input + 1, n - at_input - 1)}, 2);
  const auto weights = at::softmax(scores, -1);
  const auto mixed = (at::einsum("bhn,nhe->bhe", {weights, fixed_values}) +
                      weights.narrow(2, at_input, 1) * (varied_values - fixed_values.select(0, at_input)))
                         .reshape({batch, -1});
  const auto a = linear(mixed, o_weight_, o_bias_, true);
  const auto x_out =
      input_token == output_token ? replaced : x.select(0, output_token).unsqueeze(0).expand({batch, x.size(1)});
  return finish(x_out, a, true);
}

HfTransformerImpl::HfTransformerImpl(const HfConfig& config, const TensorSource& source, c10::ScalarType dtype)
    : config_(config), dtype_(dtype) {
  const int64_t d = config.d_model;
  token_embedding_ =
      register_buffer("token_embedding", read(source, token_embedding_name(config), {config.vocab, d}, dtype));
  read_small_embeddings(source);
  for (int64_t l = 0; l < config.layers; ++l) {
    blocks_.push_back(register_module("block" + std::to_string(l), HfBlock(config, source, l, dtype)));
  }
}

HfTransformerImpl::HfTransformerImpl(std::shared_ptr<const HfDirectory> directory, c10::Device device)
    : config_(directory->config()),
      dtype_(c10::kFloat),
      directory_(std::move(directory)),
      source_(directory_source(*directory_)),
      token_embedding_name_(weight_prefix(*directory_) + token_embedding_name(config_)),
      device_(device) {
  read_small_embeddings(source_);
  to(device_);
}

void HfTransformerImpl::read_small_embeddings(const TensorSource& source) {
  const int64_t d = config_.d_model;
  if (config_.learned_positions) {
    position_embedding_ = register_buffer(
        "position_embedding",
        read(source, config_.model_type == "gpt2" ? "wpe.weight" : "embeddings.position_embeddings.weight",
             {config_.max_positions, d}, dtype_));
  }
  if (config_.embedding_norm) {
    type_embedding_ = register_buffer(
        "type_embedding", read(source, "embeddings.token_type_embeddings.weight", {config_.type_vocab, d}, dtype_));
    embedding_norm_weight_ =
        register_buffer("embedding_norm_weight", read(source, "embeddings.LayerNorm.weight", {d}, dtype_));
    embedding_norm_bias_ =
        register_buffer("embedding_norm_bias", read(source, "embeddings.LayerNorm.bias", {d}, dtype_));
  }
}

HfBlock HfTransformerImpl::block(int64_t index) {
  if (!directory_) return blocks_.at(static_cast<size_t>(index));
  if (resident_ != index) {
    if (index < 0 || index >= config_.layers) {
      throw coupling::ConfigError(fmt::format("block {} out of range: the model has {} blocks", index, config_.layers));
    }
    blocks_.clear();  // the previous block's memory goes before the next one's is taken
    resident_ = -1;
    HfBlock block(config_, source_, index, dtype_);
    block->to(device_);
    blocks_.push_back(block);
    resident_ = index;
  }
  return blocks_.front();
}

at::Tensor HfTransformerImpl::embed(const at::Tensor& ids) {
  if (ids.dim() != 2 || ids.scalar_type() != at::kLong) {
    throw coupling::ConfigError("a Hugging Face model takes token ids [probes, tokens] (int64): give token ids");
  }
  const int64_t tokens = ids.size(1);
  if (ids.numel() > 0) config_.check_probes(tokens, ids.min().item<int64_t>(), ids.max().item<int64_t>());
  at::Tensor x;
  if (token_embedding_.defined()) {
    x = at::embedding(token_embedding_, ids);
  } else {  // streamed: the rows of the distinct ids, read now
    const auto [distinct, position] = at::_unique(ids.flatten().cpu(), /*sorted=*/true, /*return_inverse=*/true);
    const std::vector<int64_t> rows(distinct.data_ptr<int64_t>(), distinct.data_ptr<int64_t>() + distinct.numel());
    const auto table = directory_->rows(token_embedding_name_, {config_.vocab, config_.d_model}, rows);
    x = table.to(device_, dtype_).index_select(0, position.to(device_)).view({ids.size(0), tokens, config_.d_model});
  }
  if (position_embedding_.defined()) x = x + position_embedding_.narrow(0, 0, tokens);
  if (type_embedding_.defined()) x = x + type_embedding_.select(0, 0);
  if (embedding_norm_weight_.defined()) {
    x = at::layer_norm(x, {config_.d_model}, embedding_norm_weight_, embedding_norm_bias_, config_.norm_eps);
  }
  return x;
}

std::vector<at::Tensor> HfTransformerImpl::residual_states(const at::Tensor& ids) {
  std::vector<at::Tensor> states{embed(ids)};
  for (int64_t l = 0; l < num_blocks(); ++l) states.push_back(states.back() + block(l)->residual_branch(states.back()));
  return states;
}

}  // namespace coupling::hf
