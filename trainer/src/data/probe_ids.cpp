#include "trainer/data/probe_ids.h"

#include "coupling/error.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace trainer {
namespace {

/// Token ids of real vocabularies are far below this; larger numbers are not ids.
constexpr int64_t kLargestId = (int64_t{1} << 31) - 1;
constexpr uintmax_t kMaxFileBytes = 64u << 20;

bool is_space(char c) { return c == ' ' || c == '\t'; }

}  // namespace

ProbeIds parse_probe_ids(const std::string& text, const std::string& source) {
  ProbeIds result;
  size_t line_start = 0;
  for (int64_t line = 1; line_start < text.size(); ++line) {
    size_t line_end = text.find_first_of("\r\n", line_start);  // LF, CRLF (a blank line between) or CR
    if (line_end == std::string::npos) line_end = text.size();
    int64_t count = 0;
    for (size_t i = line_start; i < line_end;) {
      if (is_space(text[i])) {
        ++i;
        continue;
      }
      int64_t value = 0;
      const size_t token_start = i;
      for (; i < line_end && !is_space(text[i]); ++i) {
        const char c = text[i];
        if (c < '0' || c > '9' || value > kLargestId) {
          const size_t token_end = text.find_first_of(" \t\r\n", token_start);
          throw coupling::DataError(fmt::format(
              "{} line {}: '{}' is not a token id (a non-negative integer below 2^31): the file holds one probe per "
              "line, token ids separated by spaces (scripts/tokenize_probes.py writes it)",
              source, line, text.substr(token_start, std::min<size_t>(token_end - token_start, 40))));
        }
        value = value * 10 + (c - '0');
      }
      if (value > kLargestId) {
        throw coupling::DataError(fmt::format("{} line {}: token id {} is not below 2^31", source, line, value));
      }
      result.ids.push_back(value);
      ++count;
    }
    if (count > 0) {
      if (result.probes > 0 && count != result.tokens) {
        throw coupling::DataError(
            fmt::format("{} line {}: {} token ids, but the first probe has {}: every probe must "
                        "have the same length (tokenize_probes.py --length N)",
                        source, line, count, result.tokens));
      }
      result.tokens = count;
      ++result.probes;
    }
    const bool crlf = line_end + 1 < text.size() && text[line_end] == '\r' && text[line_end + 1] == '\n';
    line_start = line_end + (crlf ? 2 : 1);
  }
  if (result.probes == 0) throw coupling::DataError(source + " holds no probes: write one line of token ids per probe");
  return result;
}

ProbeIds read_probe_ids(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || !std::filesystem::is_regular_file(path)) {
    throw coupling::DataError("cannot read probe ids " + path + ": it is not a readable regular file");
  }
  if (size > kMaxFileBytes) {
    throw coupling::DataError(
        fmt::format("probe ids {} has {} bytes: more than {} is not a probe set", path, size, kMaxFileBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw coupling::DataError("cannot open probe ids " + path + ": check its permissions");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_probe_ids(text, path);
}

}  // namespace trainer
