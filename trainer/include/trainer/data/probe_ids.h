// Probe inputs given as token ids (coupling-analyze --probe-ids FILE): text, one probe per line,
// token ids separated by spaces, every line the same length. scripts/tokenize_probes.py writes
// such a file with a model's own tokenizer. Kept free of LibTorch so the parser can be fuzzed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace trainer {

struct ProbeIds {
  int64_t probes = 0;
  int64_t tokens = 0;
  std::vector<int64_t> ids;  ///< row-major [probes, tokens]
};

/// Parses the text of a probe-ids file; `source` names it in messages. Blank lines (and a final
/// newline) are skipped. Throws coupling::DataError naming the line and the fault: a token that
/// is not a non-negative integer below 2^31, lines of different lengths, or no probes.
ProbeIds parse_probe_ids(const std::string& text, const std::string& source);

/// Reads and parses a probe-ids file (at most 64 MiB). Throws coupling::DataError.
ProbeIds read_probe_ids(const std::string& path);

}  // namespace trainer
