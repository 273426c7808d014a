// A flat JSON object builder for run summaries (numbers and strings only), written without a
// JSON dependency. Non-finite numbers become null, as JSON has no NaN.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace trainer {

class JsonObject {
 public:
  JsonObject& add(const std::string& key, double value);
  JsonObject& add(const std::string& key, int64_t value);
  JsonObject& add(const std::string& key, const std::string& value);
  /// Pretty-printed object, one key per line, in insertion order.
  std::string str() const;

 private:
  std::vector<std::pair<std::string, std::string>> entries_;  // key -> encoded value
};

}  // namespace trainer
