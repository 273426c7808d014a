// libFuzzer: safetensors files of arbitrary bytes (the header parser, then the reader). Either a header that passes
// every check, whose entries lie inside the file and whose tensors can all be made with their shapes, or a
// coupling::DataError.
#include "coupling/error.h"
#include "coupling/formats/safetensors.h"
#include "scratch_file.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ScratchFile scratch("fuzz.safetensors");
  try {
    const auto header = coupling::safetensors::parse_header(data, size, "input");
    std::map<std::string, uint64_t> bytes;
    for (const auto& entry : header.tensors) {
      if (entry.end < entry.begin || header.data_start + entry.end > size) std::abort();
      bytes[entry.name] = entry.end - entry.begin;
    }
    (void)coupling::safetensors::header_text(header.tensors, header.metadata);
    std::ofstream(scratch.path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
    const coupling::safetensors::SafetensorsFile file(scratch.path);
    for (const auto& [name, tensor] : file.tensors()) {
      if (static_cast<uint64_t>(tensor.numel()) * tensor.element_size() != bytes.at(name)) std::abort();
    }
  } catch (const coupling::DataError&) {
  }
  return 0;
}
