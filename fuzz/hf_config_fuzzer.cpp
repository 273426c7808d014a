// libFuzzer: the Hugging Face config.json reader (coupling-analyze --hf) on arbitrary bytes.
// Either an architecture whose every size is positive and consistent, or a coupling::ConfigError.
#include "coupling/error.h"
#include "coupling/models/hf/config.h"

#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto config = coupling::hf::parse_hf_config(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    const bool sizes_positive = config.vocab > 0 && config.d_model > 0 && config.layers > 0 && config.heads > 0 &&
                                config.kv_heads > 0 && config.head_dim > 0 && config.intermediate > 0 &&
                                config.max_positions > 0;
    const bool heads_consistent = config.heads % config.kv_heads == 0;
    const bool rotary_fits = config.rotary.dims % 2 == 0 && config.rotary.dims <= config.head_dim;
    if (!sizes_positive || !heads_consistent || !rotary_fits || config.summary().empty()) std::abort();
  } catch (const coupling::ConfigError&) {
  }
  return 0;
}
