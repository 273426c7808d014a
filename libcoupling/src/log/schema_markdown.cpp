// docs/hdf5-schema.md's tables, rendered from the field registry and the log's records.
#include "coupling/engine/fields.h"
#include "coupling/log/coupling_log.h"

#include <cstdint>
#include <set>
#include <sstream>
#include <type_traits>

namespace coupling {
namespace {

/// Markdown table cell text: a '|' inside a cell would end it.
std::string cell(const std::string& text) {
  std::string escaped;
  for (char c : text) escaped += c == '|' ? std::string("\\|") : std::string(1, c);
  return escaped;
}

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, int64_t>) return "int64";
  if constexpr (std::is_same_v<T, int8_t>) return "int8";
  return "float64";
}

template <class Record>
void record_table(std::ostringstream& out) {
  out << "\n`" << Record::kGroup << "`:\n\n| column | type | units | meaning |\n|---|---|---|---|\n";
  Record record{};
  Record::visit(record, [&](const Column& c, auto& value) {
    out << "| `" << c.name << "` | " << type_name<std::decay_t<decltype(value)>>() << " | " << c.units << " | "
        << cell(c.description) << " |\n";
  });
}

std::string axes_text(const FieldSpec& field, int first) {
  std::string text;
  for (size_t i = static_cast<size_t>(first); i < field.axes.size(); ++i) {
    text += (text.empty() ? "" : ", ") + std::string(field.axes[i]);
  }
  return text;
}

}  // namespace

std::string schema_markdown() {
  std::ostringstream out;
  out << "**Dimension scales** of `/measurement` (fixed int64 datasets with a `description`):\n\n"
         "| scale | values |\n|---|---|\n| `step` | updates completed at the measurement; unlimited, the row axis |\n";
  std::set<std::string> used;
  for (const auto& field : measurement_fields()) {
    if (field.logged != Logged::kNo) used.insert(field.axes.begin(), field.axes.end());
  }
  for (const auto& axis : measurement_axes()) {
    if (used.count(axis.name) > 0) out << "| `" << axis.name << "` | " << cell(axis.description) << " |\n";
  }
  out << "\n**Record columns** `[step]`, each with `description` and `units` attributes:\n";
  record_table<MeasurementRecord>(out);
  record_table<TrainingRecord>(out);
  record_table<EvalRecord>(out);
  out << "\n**Fields** of `/measurement`, float64, each with `description` and `units` attributes (definitions in "
         "`metrics.md`). `NAME_avg` is the mean of `NAME` over its first axes, as listed.\n\n"
         "| dataset | axes after `step` | units | logged when | meaning |\n|---|---|---|---|---|\n";
  for (const auto& field : measurement_fields()) {
    if (field.logged == Logged::kNo) continue;
    out << "| `" << field.name << "` | " << axes_text(field, 0) << " | " << field.units << " | " << field.present.when
        << " | " << cell(field.description) << " |\n";
    if (field.logged == Logged::kPerProbeAndMean) {
      out << "| `" << mean_name(field) << "` | " << axes_text(field, field.mean_axes) << " | " << field.units << " | "
          << field.present.when << " | mean over " << field.axes[0];
      for (int i = 1; i < field.mean_axes; ++i) out << " and " << field.axes[static_cast<size_t>(i)];
      out << " |\n";
    }
  }
  return out.str();
}

}  // namespace coupling
