#include "trainer/loop/json_object.h"

#include <fmt/format.h>

#include <cmath>

namespace trainer {
namespace {

std::string quote(const std::string& text) {
  std::string out = "\"";
  for (unsigned char ch : text) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (ch < 0x20) out += fmt::format("\\u{:04x}", ch);
        else out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}

}  // namespace

JsonObject& JsonObject::add(const std::string& key, double value) {
  entries_.emplace_back(key, std::isfinite(value) ? fmt::format("{}", value) : "null");
  return *this;
}

JsonObject& JsonObject::add(const std::string& key, int64_t value) {
  entries_.emplace_back(key, std::to_string(value));
  return *this;
}

JsonObject& JsonObject::add(const std::string& key, const std::string& value) {
  entries_.emplace_back(key, quote(value));
  return *this;
}

std::string JsonObject::str() const {
  std::string out = "{\n";
  for (size_t i = 0; i < entries_.size(); ++i) {
    out += "  " + quote(entries_[i].first) + ": " + entries_[i].second + (i + 1 < entries_.size() ? ",\n" : "\n");
  }
  return out + "}\n";
}

}  // namespace trainer
