// libFuzzer: the safetensors header parser on arbitrary bytes. Either a header that passes every
// check, or a coupling::DataError; then every entry must lie inside the file.
#include "coupling/error.h"
#include "coupling/formats/safetensors_header.h"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto header = coupling::safetensors::parse_header(data, size, "input");
    for (const auto& entry : header.tensors) {
      if (entry.end < entry.begin || header.data_start + entry.end > size) std::abort();
    }
    (void)coupling::safetensors::header_text(header.tensors, header.metadata);
  } catch (const coupling::DataError&) {
  }
  return 0;
}
