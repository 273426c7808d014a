// libFuzzer: the TOML config reader (--config, a checkpoint's config.toml) on arbitrary bytes.
// Either a configuration whose written form reads back the same, or a coupling::ConfigError.
#include "coupling/error.h"
#include "scratch_file.h"
#include "trainer/loop/run_config.h"

#include <cstdlib>
#include <fstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ScratchFile scratch("config.toml");
  const std::string& path = scratch.path;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), size);
  try {
    const auto config = trainer::read_config_file<trainer::GptRunConfig>(path);
    const std::string written = trainer::to_toml(config);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << written;
    if (trainer::to_toml(trainer::read_config_file<trainer::GptRunConfig>(path)) != written) std::abort();
  } catch (const coupling::ConfigError&) {
  }
  return 0;
}
