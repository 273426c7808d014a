// libFuzzer: the launcher variables (torchrun, SLURM, OpenMPI) and SLURM node lists. The input is
// NAME=VALUE lines; the result is a consistent job layout or a coupling::ConfigError.
#include "coupling/error.h"
#include "trainer/parallel/env.h"

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> vars;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const auto equals = line.find('=');
    if (equals != std::string::npos) vars[line.substr(0, equals)] = line.substr(equals + 1);
  }
  try {
    const auto env = trainer::resolve_dist_env([&](const std::string& name) -> std::optional<std::string> {
      const auto found = vars.find(name);
      return found == vars.end() ? std::nullopt : std::optional<std::string>(found->second);
    });
    if (env.world_size < 1 || env.rank < 0 || env.rank >= env.world_size || env.master_port < 1 ||
        env.master_port > 65535) {
      std::abort();
    }
    (void)env.single_node();
  } catch (const coupling::ConfigError&) {
  }
  try {
    if (trainer::first_slurm_host(text).empty()) std::abort();
  } catch (const coupling::ConfigError&) {
  }
  return 0;
}
