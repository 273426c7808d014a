// libFuzzer: the IDX (MNIST-format) reader of the ViT trainer's --data on arbitrary bytes. Either
// a tensor holding exactly the file's data, or a coupling::DataError.
#include "coupling/error.h"
#include "scratch_file.h"
#include "trainer/data/image_dataset.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <fstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ScratchFile scratch("images.idx");
  const std::string& path = scratch.path;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
  try {
    const at::Tensor images = trainer::read_idx(path);
    const size_t header = 4 + 4 * static_cast<size_t>(images.dim());
    if (header + static_cast<size_t>(images.numel()) != size) std::abort();
    if (images.numel() > 0 && images.flatten()[-1].item<uint8_t>() != data[size - 1]) std::abort();
  } catch (const coupling::DataError&) {
  }
  return 0;
}
