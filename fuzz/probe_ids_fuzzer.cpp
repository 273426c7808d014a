// libFuzzer: the probe-ids reader (coupling-analyze --probe-ids) on arbitrary bytes. Either a
// rectangle of ids below 2^31, or a coupling::DataError.
#include "coupling/error.h"
#include "trainer/data/probe_ids.h"

#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto ids = trainer::parse_probe_ids(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    if (ids.probes <= 0 || ids.tokens <= 0 || static_cast<int64_t>(ids.ids.size()) != ids.probes * ids.tokens)
      std::abort();
    for (int64_t id : ids.ids) {
      if (id < 0 || id >= (int64_t{1} << 31)) std::abort();
    }
  } catch (const coupling::DataError&) {
  }
  return 0;
}
