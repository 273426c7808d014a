#include "trainer/models/activation_memory.h"

namespace trainer {

int64_t transformer_activation_bytes(int64_t sequences, int64_t tokens, int64_t layers, int64_t d, int64_t heads,
                                     int64_t outputs) {
  const int64_t per_layer = 2 * tokens * sequences * (34 * d + 5 * heads * tokens);
  const int64_t embedding = 4 * sequences * tokens * d;
  const int64_t logits = 3 * 4 * sequences * outputs;
  return layers * per_layer + embedding + logits;
}

}  // namespace trainer
