#include "coupling/log/coupling_log.h"

#include "coupling/engine/fields.h"
#include "coupling/engine/layer_linearity.h"
#include "coupling/error.h"
#include "coupling/version.h"
#include "hdf5_attributes.h"
#include "hdf5_handles.h"
#include "row_checksum.h"

#include <ATen/ATen.h>
#include <hdf5.h>
#include <hdf5_hl.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <type_traits>

namespace fs = std::filesystem;

namespace coupling {
namespace {

using hdf5::check;
using hdf5::GrowingDataset;
using hdf5::Handle;

constexpr const char* kMeasurementGroup = MeasurementRecord::kGroup;

/// The scale name of a record group's step column: "step" for /measurement, "train_step"...
template <class Record>
std::string step_scale_name() {
  const std::string group = Record::kGroup;
  return group == kMeasurementGroup ? "step" : group.substr(1) + "_step";
}

/// Dataset paths of a record's columns, the step column first.
template <class Record>
std::vector<std::string> column_paths() {
  std::vector<std::string> paths;
  Record record{};
  Record::visit(record, [&](const Column& c, auto&) { paths.push_back(std::string(Record::kGroup) + "/" + c.name); });
  return paths;
}

/// How many rows resume keeps of a group with these steps: those up to the first one at or past
/// `keep_below`, or out of order (a log whose steps do not increase, rows of an earlier failure,
/// keeps only its ordered start).
hsize_t ordered_rows_below(const std::vector<int64_t>& steps, int64_t keep_below) {
  hsize_t keep = 0;
  while (keep < steps.size() && steps[keep] < keep_below && (keep == 0 || steps[keep] > steps[keep - 1])) ++keep;
  return keep;
}

/// The rows of dataset `path` (0 if it does not exist).
hsize_t dataset_rows(hid_t file, const std::string& path) {
  return hdf5::exists(file, path) ? GrowingDataset::open(file, path, H5T_NATIVE_INT64).rows() : 0;
}

/// Refuses a log whose rows that resume would keep in `group` (datasets `names`) do not match
/// their row checksums: checked on the read-only file, before anything is truncated.
void verify_kept_rows(hid_t file, const std::string& path, const std::string& group,
                      const std::vector<std::string>& names, int64_t keep_below) {
  const std::string step_path = group + "/step";
  std::vector<int64_t> steps(dataset_rows(file, step_path));
  if (steps.empty()) return;
  GrowingDataset::open(file, step_path, H5T_NATIVE_INT64).read(0, steps.size(), steps.data());
  hsize_t keep = ordered_rows_below(steps, keep_below);
  for (const auto& name : names) keep = std::min(keep, dataset_rows(file, group + "/" + name));
  keep = std::min(keep, dataset_rows(file, group + "/" + hdf5::kRowChecksumColumn));
  if (const auto row = hdf5::first_damaged_row(file, group, names, keep)) {
    throw LogError("log " + path + " is damaged: row " + std::to_string(*row) + " (step " +
                   std::to_string(steps[*row]) + ") of " + group + " does not match its " + hdf5::kRowChecksumColumn +
                   ": it was left untouched; restore it from a copy, or start the analysis in another log");
  }
}

/// The names (within their group) of a record's columns.
template <class Record>
std::vector<std::string> column_names() {
  std::vector<std::string> names;
  for (const auto& path : column_paths<Record>()) names.push_back(path.substr(path.rfind('/') + 1));
  return names;
}

/// One logged dataset of the registry: a field itself or its NAME_avg mean.
struct LoggedDataset {
  std::string name;
  const FieldSpec* field;
  bool mean;
  std::vector<std::string> axes() const {
    std::vector<std::string> names{"step"};
    names.insert(names.end(), field->axes.begin() + (mean ? field->mean_axes : 0), field->axes.end());
    return names;
  }
  std::string path() const { return std::string(kMeasurementGroup) + "/" + name; }
  at::Tensor value(const Measurement& m) const {
    const at::Tensor& t = m.*field->member;
    return mean ? field_mean(*field, t) : t.to(at::kDouble);
  }
};

/// Whether the dataset is NaN by definition in a measurement of this layout, so that its NaN does
/// not flag the row as non-finite: layer linearity over fewer than d + 1 probe tokens.
bool nan_by_definition(const LoggedDataset& d, const MeasurementLayout& m) {
  return d.field->member == &Measurement::layer_linearity &&
         m.probes * m.sequence_length < linearity_min_tokens(m.d_model);
}

/// Every dataset the registry can log, in registry order.
const std::vector<LoggedDataset>& logged_datasets() {
  static const std::vector<LoggedDataset> datasets = [] {
    std::vector<LoggedDataset> all;
    for (const auto& field : measurement_fields()) {
      if (field.logged == Logged::kNo) continue;
      all.push_back({field.name, &field, false});
      if (field.logged == Logged::kPerProbeAndMean) all.push_back({mean_name(field), &field, true});
    }
    return all;
  }();
  return datasets;
}

/// An axis of a fixed root dataset: its dimension scale's name (values 0..n-1), description and labels.
struct RootAxis {
  std::string name;
  std::string description;
  std::vector<const char*> labels = {};
};

/// A fixed dataset `name` holding `values` (int64 when they are integers, else float32), with
/// its description, units and a dimension scale on each axis (created under `parent` once).
void write_tensor(hid_t parent, const std::string& name, const at::Tensor& values, const std::string& description,
                  const std::string& units, const std::vector<RootAxis>& axes) {
  const bool integer = !at::isFloatingType(values.scalar_type());
  const auto data = values.to(integer ? at::kLong : at::kFloat).cpu().contiguous();
  std::vector<hsize_t> dims(data.sizes().begin(), data.sizes().end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle ds(check(H5Dcreate2(parent, name.c_str(), integer ? H5T_STD_I64LE : H5T_IEEE_F32LE, space.get(), H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
                  "creating " + name),
            H5Dclose);
  check(
      H5Dwrite(ds.get(), integer ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data_ptr()),
      "writing " + name);
  hdf5::describe(ds.get(), description, units);
  std::vector<std::string> scales;
  for (size_t axis = 0; axis < axes.size(); ++axis) {
    const auto& spec = axes[axis];
    if (!hdf5::exists(parent, spec.name)) {
      std::vector<int64_t> indices(dims[axis]);
      for (size_t i = 0; i < indices.size(); ++i) indices[i] = static_cast<int64_t>(i);
      hdf5::write_scale(parent, spec.name, indices, spec.description, spec.labels);
    }
    scales.push_back(spec.name);
  }
  hdf5::attach(ds.get(), parent, scales);
}

/// The axes of /probes: token ids [probe, position], images [probe, channel, row, column], else
/// [probe, input_axis_1, ...].
std::vector<RootAxis> probe_axes(const at::Tensor& probes) {
  std::vector<RootAxis> axes{{"probe", "probe index (a row of /probes)"}};
  if (!at::isFloatingType(probes.scalar_type()) && probes.dim() == 2) {
    axes.push_back({"position", "token position in the probe"});
  } else if (probes.dim() == 4) {
    axes.insert(axes.end(), {{"channel", "image channel"}, {"row", "pixel row"}, {"column", "pixel column"}});
  } else {
    for (int64_t axis = 1; axis < probes.dim(); ++axis) {
      axes.push_back({"input_axis_" + std::to_string(axis), "axis " + std::to_string(axis) + " of a probe input"});
    }
  }
  return axes;
}

void write_probes(hid_t file, const at::Tensor& probes) {
  if (!probes.defined()) return;
  const bool integer = !at::isFloatingType(probes.scalar_type());
  write_tensor(file, "probes", probes,
               integer ? "probe inputs: token ids [probe, position]" : "probe inputs [probe, ...]",
               integer ? "token ids" : "model input units", probe_axes(probes));
}

/// Whether the file's /probes hold exactly `probes` (the run identity: data, seed, probe count).
bool same_probes(hid_t file, const at::Tensor& probes) {
  if (!hdf5::exists(file, "probes")) return false;
  Handle ds(check(H5Dopen2(file, "probes", H5P_DEFAULT), "opening /probes"), H5Dclose);
  Handle space(H5Dget_space(ds.get()), H5Sclose);
  std::vector<hsize_t> dims(static_cast<size_t>(H5Sget_simple_extent_ndims(space.get())));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  if (!std::equal(dims.begin(), dims.end(), probes.sizes().begin(), probes.sizes().end())) return false;
  const bool integer = !at::isFloatingType(probes.scalar_type());
  const auto expected = probes.to(integer ? at::kLong : at::kFloat).cpu().contiguous();
  auto stored = at::empty_like(expected);
  check(H5Dread(ds.get(), integer ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                stored.data_ptr()),
        "reading /probes");
  return at::equal(stored, expected);
}

/// /context_pairs [np, 2]: the resolved (t1, t2) of each context pair, the coordinates behind the
/// context axis (index (layer - 1) * np + pair).
void write_context_pairs(hid_t file, const std::vector<TokenPair>& pairs) {
  std::vector<int64_t> values;
  for (const auto& pair : pairs) values.insert(values.end(), {pair.input, pair.output});
  write_tensor(file, "context_pairs", at::tensor(values, at::kLong).view({-1, 2}),
               "context pair c: (input token t1, output token t2) of J_{t1 t2}; /measurement's context axis is "
               "(layer - 1) * np + c",
               "token positions",
               {{"context_pair", "context pair index c"},
                {"pair_token", "0 = input token t1, 1 = output token t2", {"input", "output"}}});
}

/// Names of the links in a group.
std::vector<std::string> member_names(hid_t group) {
  H5G_info_t info;
  check(H5Gget_info(group, &info), "listing a group");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t size = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(static_cast<size_t>(check(size, "reading a link name")), '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    names.push_back(name);
  }
  return names;
}

/// Appends `lines` to the string attribute `name` (created if absent); with `only_new`, just the
/// lines it does not hold yet.
void append_lines(hid_t file, const std::string& name, const std::string& lines, bool only_new) {
  const auto earlier = hdf5::read_string_attribute(file, name);
  std::string added;
  std::istringstream in(lines);
  for (std::string line; std::getline(in, line);) {
    const bool present = earlier && ("\n" + *earlier + "\n").find("\n" + line + "\n") != std::string::npos;
    if (!(only_new && present)) added += (added.empty() ? "" : "\n") + line;
  }
  if (added.empty()) return;
  if (earlier) check(H5Adelete(file, name.c_str()), "replacing attribute " + name);
  hdf5::write_string_attribute(file, name, (earlier ? *earlier + "\n" : std::string()) + added);
}

/// Why the measurement datasets of `file` are not those the registry logs for `layout` (empty
/// when they are): a dataset missing, unknown, or of another shape.
std::string layout_mismatch(hid_t file, const MeasurementLayout& layout) {
  if (!hdf5::exists(file, std::string(kMeasurementGroup) + "/step")) return "";
  Handle group = hdf5::open_group(file, kMeasurementGroup);
  std::set<std::string> known;
  for (const auto& column : column_paths<MeasurementRecord>()) known.insert(column.substr(column.rfind('/') + 1));
  known.insert(hdf5::kRowChecksumColumn);
  for (const auto& d : logged_datasets()) {
    known.insert(d.name);
    const bool present = d.field->present.holds(layout);
    if (present != hdf5::exists(group.get(), d.name)) {
      return d.name + (present ? " is missing" : " is there but not measured by this run");
    }
    if (!present) continue;
    Handle dataset(check(H5Dopen2(group.get(), d.name.c_str(), H5P_DEFAULT), "opening " + d.name), H5Dclose);
    Handle space(H5Dget_space(dataset.get()), H5Sclose);
    std::vector<hsize_t> dims(static_cast<size_t>(H5Sget_simple_extent_ndims(space.get())));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    const auto shape = field_shape(*d.field, layout);
    if (!std::equal(dims.begin() + 1, dims.end(), shape.begin() + (d.mean ? d.field->mean_axes : 0), shape.end())) {
      return d.name + " has another shape";
    }
  }
  for (const auto& name : member_names(group.get())) {
    if (known.count(name) > 0) continue;
    Handle dataset(check(H5Dopen2(group.get(), name.c_str(), H5P_DEFAULT), "opening " + name), H5Dclose);
    if (H5DSis_scale(dataset.get()) <= 0) return name + " is unknown to this libcoupling";
  }
  return "";
}

/// A log path naming a directory is refused alike when creating and when resuming.
void refuse_directory(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    throw IoError("log path " + path + " is a directory: give a file name such as " + path + "/coupling.h5");
  }
}

}  // namespace

struct CouplingLog::Impl {
  std::string path;
  Handle file;
  bool swmr = false;
  std::map<std::string, GrowingDataset> datasets;  // by path inside the file

  GrowingDataset& ds(const std::string& name) { return datasets.at(name); }

  /// After every append: in SWMR mode flush the datasets under `group` (what was written),
  /// otherwise the whole file. Either way every completed row survives a crash.
  void flush(const std::string& group = "/") {
    if (swmr) {
      for (auto& [name, d] : datasets) {
        if (name.rfind(group, 0) == 0) d.flush();
      }
    } else {
      if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) {
        throw IoError("HDF5: flushing " + path + " failed: is its disk full? Free space and resume");
      }
    }
  }

  void start_swmr() {
    check(H5Fstart_swmr_write(file.get()), "starting SWMR mode on " + path);
    swmr = true;
  }

  bool has_measurements() const { return hdf5::exists(file.get(), std::string(kMeasurementGroup) + "/step"); }

  /// Creates a record's group and its columns (the step column is the group's row scale).
  template <class Record>
  void create_columns(hid_t group) {
    Record record{};
    bool first = true;
    Record::visit(record, [&](const Column& c, auto& value) {
      using T = std::decay_t<decltype(value)>;
      auto d = GrowingDataset::create(group, c.name, hdf5::Types<T>::file(), {});
      if (first) {
        check(H5DSset_scale(d.id(), step_scale_name<Record>().c_str()), "H5DSset_scale " + step_scale_name<Record>());
      } else {
        hdf5::attach(d.id(), group, {"step"});
      }
      hdf5::describe(d.id(), c.description, c.units);
      datasets[std::string(Record::kGroup) + "/" + c.name] = std::move(d);
      first = false;
    });
    auto checksum = GrowingDataset::create(group, hdf5::kRowChecksumColumn, H5T_STD_I64LE, {});
    hdf5::attach(checksum.id(), group, {"step"});
    hdf5::describe(checksum.id(),
                   "CRC-32 of the row's values in every other dataset of the group (docs/hdf5-schema.md)", "1");
    datasets[std::string(Record::kGroup) + "/" + hdf5::kRowChecksumColumn] = std::move(checksum);
  }

  template <class Record>
  void open_columns() {
    Record record{};
    Record::visit(record, [&](const Column& c, auto& value) {
      using T = std::decay_t<decltype(value)>;
      const std::string name = std::string(Record::kGroup) + "/" + c.name;
      datasets[name] = GrowingDataset::open(file.get(), name, hdf5::Types<T>::memory());
    });
    const std::string checksum = std::string(Record::kGroup) + "/" + hdf5::kRowChecksumColumn;
    if (hdf5::exists(file.get(), checksum))
      datasets[checksum] = GrowingDataset::open(file.get(), checksum, H5T_NATIVE_INT64);
  }

  /// Appends a record's columns, adding them to `checksum`; then the row's checksum, unless
  /// `more` datasets of the row follow (the measurement's fields).
  template <class Record>
  void append_record(const Record& record, hdf5::RowChecksum& checksum, bool more = false) {
    Record::visit(record, [&](const Column& c, const auto& value) {
      ds(std::string(Record::kGroup) + "/" + c.name).append(&value);
      // As the checksum reads it back: integers as int64, numbers as float64.
      using T = std::decay_t<decltype(value)>;
      const std::conditional_t<std::is_integral_v<T>, int64_t, double> widened = value;
      checksum.add(c.name, &widened, sizeof widened);
    });
    if (!more) append_checksum(Record::kGroup, checksum);
  }

  /// Appends the row checksum of `group` (logs from before the column have none to append to).
  void append_checksum(const std::string& group, const hdf5::RowChecksum& checksum) {
    const auto found = datasets.find(group + "/" + hdf5::kRowChecksumColumn);
    if (found == datasets.end()) return;
    const int64_t value = checksum.value();
    found->second.append(&value);
  }

  void open_measurement_datasets() {
    open_columns<MeasurementRecord>();
    for (const auto& d : logged_datasets()) {
      if (hdf5::exists(file.get(), d.path()))
        datasets[d.path()] = GrowingDataset::open(file.get(), d.path(), H5T_NATIVE_DOUBLE);
    }
  }

  /// Creates the scales and per-measurement datasets of a layout.
  void create_measurement_datasets(const MeasurementLayout& m) {
    Handle group = hdf5::open_group(file.get(), kMeasurementGroup);
    const hid_t g = group.get();
    std::set<std::string> scales;
    for (const auto& d : logged_datasets()) {
      if (!d.field->present.holds(m)) continue;
      for (const auto& axis : d.axes()) {
        if (axis == "step" || !scales.insert(axis).second) continue;
        const AxisSpec& spec = measurement_axis(axis);
        hdf5::write_scale(g, axis, spec.values(m), spec.description, spec.labels);
      }
    }
    if (!m.context_pairs.empty()) write_context_pairs(file.get(), m.context_pairs);
    hdf5::write_string_attribute(g, "jacobian_path", m.matrix_free ? "matrix-free" : "materialised");
    hdf5::write_int_attribute(g, "depth_band", m.depth_band);
    hdf5::write_int_attribute(g, "linearity_tokens", m.probes * m.sequence_length);
    create_columns<MeasurementRecord>(g);
    for (const auto& d : logged_datasets()) {
      if (!d.field->present.holds(m)) continue;
      const auto shape = field_shape(*d.field, m);
      auto dataset = GrowingDataset::create(g, d.name, H5T_IEEE_F64LE,
                                            {shape.begin() + (d.mean ? d.field->mean_axes : 0), shape.end()});
      hdf5::describe(dataset.id(),
                     d.mean ? "mean over the first " + std::to_string(d.field->mean_axes) + " axes of " +
                                  d.field->name + " (" + d.field->description + ")"
                            : d.field->description,
                     d.field->units);
      hdf5::attach(dataset.id(), g, d.axes());
      datasets[d.path()] = std::move(dataset);
    }
  }

  /// Keeps the rows of a group with step < keep_below that every column holds.
  void truncate(const std::vector<std::string>& columns, int64_t keep_below) {
    auto& step = ds(columns.front());
    const hsize_t rows = step.rows();
    std::vector<int64_t> steps(rows);
    if (rows > 0)
      check(H5Dread(step.id(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps.data()), "reading steps");
    hsize_t keep = ordered_rows_below(steps, keep_below);
    // A writer killed between its per-dataset flushes leaves columns one row longer or shorter
    // than the step column: only rows that every column holds are complete.
    for (const auto& column : columns) keep = std::min(keep, ds(column).rows());
    for (const auto& column : columns) {
      if (ds(column).rows() != keep) ds(column).truncate(keep);
    }
  }

  /// `columns` (paths in one group) and that group's row_crc32 column, if the log has one.
  std::vector<std::string> with_checksum(std::vector<std::string> columns) const {
    const std::string checksum = columns.front().substr(0, columns.front().rfind('/') + 1) + hdf5::kRowChecksumColumn;
    if (datasets.count(checksum) > 0) columns.push_back(checksum);
    return columns;
  }

  /// The measurement group's columns and logged datasets that exist in this file.
  std::vector<std::string> measurement_columns() const {
    auto columns = column_paths<MeasurementRecord>();
    for (const auto& d : logged_datasets()) {
      if (datasets.count(d.path()) > 0) columns.push_back(d.path());
    }
    return columns;
  }
};

CouplingLog::CouplingLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CouplingLog::CouplingLog(CouplingLog&&) noexcept = default;
CouplingLog& CouplingLog::operator=(CouplingLog&&) noexcept = default;
CouplingLog::~CouplingLog() = default;

const std::string& CouplingLog::path() const { return impl_->path; }

CouplingLog CouplingLog::create(const std::string& path, const LogMetadata& metadata,
                                const std::optional<MeasurementLayout>& layout) {
  hdf5::prepare_library();
  refuse_directory(path);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    throw IoError("log " + path +
                  " already exists: resume the run to continue it, or choose another log path "
                  "(it is never overwritten)");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  // The file appears under its name only once its skeleton is flushed: a writer killed while
  // creating it leaves PATH.creating (removed by the next create), never a half-made PATH.
  const std::string creating = path + ".creating";
  fs::remove(creating, ec);
  const hid_t file = H5Fcreate(creating.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get());
  if (file < 0) {
    const int error = errno;  // what the failing create left (HDF5's own stack is silenced)
    fs::remove(creating, ec);
    if (error == ENOSPC || error == EDQUOT) {
      throw IoError("cannot create log " + path +
                    ": no space left on its disk (disk full); free space or give a log "
                    "path on another disk");
    }
    throw IoError("cannot create log " + path + ": check that its directory exists and is writable");
  }
  impl->file = Handle(file, H5Fclose);

  hdf5::write_int_attribute(file, "schema_version", kSchemaVersion);
  hdf5::write_string_attribute(file, "libcoupling_version", version());
  hdf5::write_string_attribute(file, "git_revision", git_revision());
  hdf5::write_string_attribute(file, "model", metadata.model);
  hdf5::write_string_attribute(file, "model_config", metadata.model_config);
  hdf5::write_string_attribute(file, "engine_config", metadata.engine_config);
  hdf5::write_int_attribute(file, "seed", metadata.seed);
  if (!metadata.data_sha256.empty()) hdf5::write_string_attribute(file, "data_sha256", metadata.data_sha256);
  if (!metadata.sources.empty()) hdf5::write_string_attribute(file, "model_sources", metadata.sources);
  hdf5::write_int_attribute(file, "world_size", metadata.world_size);
  hdf5::write_string_attribute(file, "training_precision", metadata.training_precision);
  write_probes(file, metadata.probes);
  {
    Handle measurement = hdf5::make_group(file, kMeasurementGroup);
    hdf5::write_string_attribute(measurement.get(), "description",
                                 "one row per measurement: the coupling, trajectory and norm fields (docs/metrics.md)");
  }
  {
    Handle train = hdf5::make_group(file, TrainingRecord::kGroup);
    hdf5::write_string_attribute(train.get(), "description", "training loss of each update (the trainer's cadence)");
    impl->create_columns<TrainingRecord>(train.get());
    Handle eval = hdf5::make_group(file, EvalRecord::kGroup);
    hdf5::write_string_attribute(eval.get(), "description", "held-out evaluations");
    impl->create_columns<EvalRecord>(eval.get());
  }
  if (layout) impl->create_measurement_datasets(*layout);
  impl->flush();
  if (layout) impl->start_swmr();  // every object exists: readers may follow the file live
  // A hard link never replaces a file that appeared meanwhile; the open handle follows the inode.
  if (::link(creating.c_str(), path.c_str()) == 0) {
    fs::remove(creating, ec);
  } else if (errno == EEXIST) {
    throw IoError("log " + path + " appeared while this one was being created: it was left alone");
  } else {
    fs::rename(creating, path, ec);  // a file system without hard links
    if (ec) throw IoError("cannot name the new log " + path + ": " + ec.message());
  }
  return CouplingLog(std::move(impl));
}

CouplingLog CouplingLog::resume(const std::string& path, const LogMetadata& metadata, int64_t last_step,
                                const std::optional<MeasurementLayout>& layout) {
  hdf5::prepare_library();
  refuse_directory(path);
  if (!fs::is_regular_file(path))
    throw LogError("no log at " + path + " to resume: was the run started with another log path?");
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    throw LogError(
        path + " is not an HDF5 file (or is corrupt): it was left untouched; move it away or give another log path");
  }
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  // First a read-only look, so that a foreign file is never modified.
  {
    Handle readonly(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()), H5Fclose);
    if (!readonly.valid()) throw LogError("cannot open " + path + " (corrupt HDF5 file?): it was left untouched");
    const auto schema = hdf5::read_int_attribute(readonly.get(), "schema_version");
    if (!schema || !hdf5::read_string_attribute(readonly.get(), "engine_config")) {
      throw LogError(path + " is not a libcoupling log (no schema_version): it was left untouched");
    }
    if (*schema != kSchemaVersion) {
      throw LogError(path + " has log schema version " + std::to_string(*schema) + " and this libcoupling (" +
                     version() + ") writes version " + std::to_string(kSchemaVersion) +
                     ": it cannot append to it (left untouched; scripts/plot_coupling.py still reads it); " +
                     (*schema > kSchemaVersion ? "upgrade libcoupling" : "log the continued run to a new file"));
    }
    const std::pair<const char*, const std::string*> expected[] = {{"model", &metadata.model},
                                                                   {"model_config", &metadata.model_config},
                                                                   {"engine_config", &metadata.engine_config}};
    for (const auto& [name, value] : expected) {
      const auto stored = hdf5::read_string_attribute(readonly.get(), name);
      if (stored != *value) {
        throw LogError("log " + path + " belongs to a run with a different " + name + " (log: '" + stored.value_or("") +
                       "', this run: '" + *value + "'): resume with the original settings or choose another log path");
      }
    }
    // The run's identity beyond its options: the seed, and the probe inputs themselves (which
    // follow from the data, the seed and the probe count).
    const auto stored_seed = hdf5::read_int_attribute(readonly.get(), "seed");
    if (stored_seed != metadata.seed) {
      throw LogError("log " + path + " belongs to a run with a different seed (log: " +
                         (stored_seed ? std::to_string(*stored_seed) : std::string("none")) +
                         ", this run: " + std::to_string(metadata.seed) +
                         "): it was left untouched; resume with the original seed "
                         "or choose another log path",
                     "LogMetadata::seed");
    }
    const auto stored_data = hdf5::read_string_attribute(readonly.get(), "data_sha256");
    if (stored_data && !metadata.data_sha256.empty() && *stored_data != metadata.data_sha256) {
      throw LogError("log " + path + " belongs to a run on other data (data_sha256 of the log: " +
                         stored_data->substr(0, 16) + "..., of this run's data: " + metadata.data_sha256.substr(0, 16) +
                         "...): it was left untouched; resume with the original data or choose another log path",
                     "LogMetadata::data_sha256");
    }
    if (metadata.probes.defined() && !same_probes(readonly.get(), metadata.probes)) {
      throw LogError("log " + path +
                     " belongs to a run with different probes (other data, seed or probe count): it "
                     "was left untouched; resume with the original settings or choose another log path");
    }
    const int64_t keep_below = last_step == std::numeric_limits<int64_t>::max() ? last_step : last_step + 1;
    verify_kept_rows(readonly.get(), path, TrainingRecord::kGroup, column_names<TrainingRecord>(), last_step);
    verify_kept_rows(readonly.get(), path, EvalRecord::kGroup, column_names<EvalRecord>(), keep_below);
    auto measurement_names = column_names<MeasurementRecord>();
    for (const auto& d : logged_datasets()) {
      if (hdf5::exists(readonly.get(), d.path())) measurement_names.push_back(d.name);
    }
    verify_kept_rows(readonly.get(), path, kMeasurementGroup, measurement_names, last_step == 0 ? 0 : keep_below);
    if (layout) {
      const std::string mismatch = layout_mismatch(readonly.get(), *layout);
      if (!mismatch.empty()) {
        throw LogError("log " + path + " holds other measurements than this run makes (" + mismatch +
                       "): it was left untouched; resume with the libcoupling and options that started it, or "
                       "choose another log path");
      }
    }
  }
  // A writer that was killed leaves the superblock marked "open for writing": clear it (as
  // `h5clear -s` does) and make the end-of-allocation mark cover the file (as `h5clear -i`).
  hbool_t clear_flags = 1;
  H5Pset(fapl.get(), "clear_status_flags", &clear_flags);
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get());
  if (file < 0) {
    throw LogError("cannot reopen " + path +
                   " for writing: check its permissions; if a crashed writer left it "
                   "locked, `h5clear -s -i " +
                   path + "` (hdf5-tools) repairs it");
  }
  impl->file = Handle(file, H5Fclose);
  check(H5Fincrement_filesize(file, 0), "repairing the end-of-allocation mark of " + path);
  // Attributes change only before SWMR mode starts.
  if (!metadata.resume_note.empty()) append_lines(file, "resume_overrides", metadata.resume_note, false);
  if (!metadata.sources.empty()) append_lines(file, "model_sources", metadata.sources, true);

  impl->open_columns<TrainingRecord>();
  impl->open_columns<EvalRecord>();
  // Rows with step < limit stay; last_step = INT64_MAX keeps every row (no overflow).
  const int64_t after_last = last_step == std::numeric_limits<int64_t>::max() ? last_step : last_step + 1;
  impl->truncate(impl->with_checksum(column_paths<TrainingRecord>()), last_step);
  impl->truncate(impl->with_checksum(column_paths<EvalRecord>()), after_last);
  if (impl->has_measurements()) {
    impl->open_measurement_datasets();
    // Resumed from its step-0 checkpoint, a run measures step 0 again: its old row goes.
    impl->truncate(impl->with_checksum(impl->measurement_columns()), last_step == 0 ? 0 : after_last);
    impl->start_swmr();
  }
  impl->flush();
  return CouplingLog(std::move(impl));
}

void CouplingLog::append(const MeasurementRecord& record, const Measurement& m) {
  auto& impl = *impl_;
  if (!impl.has_measurements()) {
    impl.create_measurement_datasets(m);
    impl.start_swmr();  // every object exists now: readers may follow the file live
  }
  const auto steps = measured_steps();
  if (!steps.empty() && record.step <= steps.back()) {
    throw ConfigError("measurement step " + std::to_string(record.step) + " is not after the last logged step " +
                      std::to_string(steps.back()));
  }
  // Convert and check every dataset before the first write, so a mismatch leaves no partial row.
  std::vector<std::tuple<GrowingDataset*, std::string, at::Tensor>> rows;
  MeasurementRecord bookkeeping = record;
  bookkeeping.peak_rss_mib = m.peak_rss_mib;
  for (const auto& d : logged_datasets()) {
    const bool logged = impl.datasets.count(d.path()) > 0;
    if (d.field->present.holds(m) != logged) {
      throw ConfigError(std::string("measurement field ") + d.name + (logged ? " is missing" : " is new") +
                        ", unlike earlier measurements in " + impl.path + ": tokens and context pairs must stay fixed");
    }
    if (!logged) continue;
    auto value = d.value(m).cpu().contiguous();
    auto& dataset = impl.ds(d.path());
    if (!std::equal(dataset.item().begin(), dataset.item().end(), value.sizes().begin(), value.sizes().end())) {
      throw ConfigError("measurement field " + d.name + " has shape " + c10::str(value.sizes()) +
                        ", unlike earlier measurements in " + impl.path + ": probes, tokens and K must stay fixed");
    }
    if (!at::isfinite(value).all().item<bool>() && !nan_by_definition(d, m)) bookkeeping.nonfinite = 1;
    rows.emplace_back(&dataset, d.name, value);
  }
  hdf5::RowChecksum checksum;
  impl.append_record(bookkeeping, checksum, /*more=*/true);
  for (auto& [dataset, name, value] : rows) {
    dataset->append(value.data_ptr<double>());
    checksum.add(name, value.data_ptr<double>(), value.numel() * sizeof(double));
  }
  impl.append_checksum(kMeasurementGroup, checksum);
  impl.flush(std::string(kMeasurementGroup) + "/");
}

void CouplingLog::append_training(const TrainingRecord& record) {
  hdf5::RowChecksum checksum;
  impl_->append_record(record, checksum);
  impl_->flush(std::string(TrainingRecord::kGroup) + "/");
}

void CouplingLog::append_eval(const EvalRecord& record) {
  hdf5::RowChecksum checksum;
  impl_->append_record(record, checksum);
  impl_->flush(std::string(EvalRecord::kGroup) + "/");
}

std::vector<int64_t> CouplingLog::measured_steps() const {
  if (!impl_->has_measurements()) return {};
  auto& step = impl_->ds(std::string(kMeasurementGroup) + "/step");
  std::vector<int64_t> steps(step.rows());
  if (!steps.empty()) {
    check(H5Dread(step.id(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps.data()),
          "reading /measurement/step");
  }
  return steps;
}

}  // namespace coupling
