#include "coupling/coupling_log.h"

#include "coupling/error.h"
#include "coupling/version.h"
#include "hdf5_handles.h"

#include <ATen/ATen.h>
#include <hdf5.h>
#include <hdf5_hl.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <functional>
#include <map>
#include <optional>
#include <sstream>

namespace fs = std::filesystem;

namespace coupling {
namespace {

using hdf5::check;
using hdf5::GrowingDataset;
using hdf5::Handle;

/// Silences HDF5's automatic error-stack printing for this process: errors become exceptions.
void silence_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

Handle string_type() {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

void write_string_attribute(hid_t object, const std::string& name, const std::string& value) {
  Handle type = string_type();
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute(check(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                         "creating attribute " + name),
                   H5Aclose);
  const char* text = value.c_str();
  check(H5Awrite(attribute.get(), type.get(), &text), "writing attribute " + name);
}

void write_int_attribute(hid_t object, const std::string& name, int64_t value) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute(check(H5Acreate2(object, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                         "creating attribute " + name),
                   H5Aclose);
  check(H5Awrite(attribute.get(), H5T_NATIVE_INT64, &value), "writing attribute " + name);
}

std::optional<std::string> read_string_attribute(hid_t object, const std::string& name) {
  if (H5Aexists(object, name.c_str()) <= 0) return std::nullopt;
  Handle attribute(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose);
  Handle type = string_type();
  char* text = nullptr;
  if (H5Aread(attribute.get(), type.get(), &text) < 0) return std::nullopt;
  std::string value = text ? text : "";
  Handle space(H5Aget_space(attribute.get()), H5Sclose);
  H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, &text);
  return value;
}

std::optional<int64_t> read_int_attribute(hid_t object, const std::string& name) {
  if (H5Aexists(object, name.c_str()) <= 0) return std::nullopt;
  Handle attribute(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose);
  int64_t value = 0;
  if (H5Aread(attribute.get(), H5T_NATIVE_INT64, &value) < 0) return std::nullopt;
  return value;
}

Handle make_group(hid_t parent, const std::string& name) {
  return Handle(check(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "creating group " + name),
                H5Gclose);
}

/// A fixed 1-D dimension scale with integer values.
void write_scale(hid_t parent, const std::string& name, const std::vector<int64_t>& values,
                 const std::string& description) {
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  Handle ds(check(H5Dcreate2(parent, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  "creating scale " + name),
            H5Dclose);
  check(H5Dwrite(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), "writing scale " + name);
  check(H5DSset_scale(ds.get(), name.c_str()), "H5DSset_scale " + name);
  write_string_attribute(ds.get(), "description", description);
}

void attach(hid_t dataset, hid_t parent, const std::vector<std::string>& scales) {
  for (size_t axis = 0; axis < scales.size(); ++axis) {
    Handle scale(check(H5Dopen2(parent, scales[axis].c_str(), H5P_DEFAULT), "opening scale " + scales[axis]), H5Dclose);
    check(H5DSattach_scale(dataset, scale.get(), static_cast<unsigned>(axis)), "attaching scale " + scales[axis]);
  }
}

std::vector<int64_t> range(int64_t first, int64_t count) {
  std::vector<int64_t> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) values[static_cast<size_t>(i)] = first + i;
  return values;
}

/// One per-measurement dataset: how to get it from a Measurement, its non-step axes, its meaning.
struct Field {
  const char* name;
  std::function<at::Tensor(const Measurement&)> get;
  std::vector<std::string> axes;
  const char* description;
};

at::Tensor probe_mean(const at::Tensor& t) { return t.mean(at::IntArrayRef{0, 1}); }

const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      {"depth_coupling", [](const Measurement& m) { return m.depth_coupling; },
       {"probe", "token", "orientation", "normalisation", "k", "layer", "basis_layer"},
       "m_K(J^layer_tt, J^basis_layer_tt); lower = more coupled (docs/metrics.md section 3)"},
      {"depth_mean_offdiag", [](const Measurement& m) { return m.depth_mean_offdiag; },
       {"probe", "token", "orientation", "normalisation", "k"}, "mean of depth_coupling over layer != basis_layer"},
      {"depth_mean_adjacent", [](const Measurement& m) { return m.depth_mean_adjacent; },
       {"probe", "token", "orientation", "normalisation", "k"}, "mean of depth_coupling over |layer - basis_layer| = 1"},
      {"depth_mean_offdiag_avg", [](const Measurement& m) { return probe_mean(m.depth_mean_offdiag); },
       {"orientation", "normalisation", "k"}, "depth_mean_offdiag averaged over probes and tokens"},
      {"depth_mean_adjacent_avg", [](const Measurement& m) { return probe_mean(m.depth_mean_adjacent); },
       {"orientation", "normalisation", "k"}, "depth_mean_adjacent averaged over probes and tokens"},
      {"singular_values", [](const Measurement& m) { return m.singular_values; }, {"probe", "token", "layer", "rank"},
       "top singular values of J^layer_tt"},
      {"residual_norms", [](const Measurement& m) { return m.residual_norms; }, {"probe", "token", "state"},
       "||x^l|| for l = 0..L"},
      {"step_lengths", [](const Measurement& m) { return m.step_lengths; }, {"probe", "token", "layer"},
       "||x^l - x^(l-1)|| for l = 1..L"},
      {"line_shape_score", [](const Measurement& m) { return m.line_shape_score; }, {"probe", "token"},
       "LSS >= 1; 1 = straight trajectory"},
      {"norm_growth_rate", [](const Measurement& m) { return m.norm_growth_rate; }, {"probe", "token"},
       "slope b of log||x^l|| = a + b l (nats per block)"},
      {"norm_growth_factor", [](const Measurement& m) { return m.norm_growth_factor; }, {"probe", "token"}, "exp(b)"},
      {"norm_growth_r2", [](const Measurement& m) { return m.norm_growth_r2; }, {"probe", "token"},
       "R^2 of the log-norm fit"},
      {"step_cv", [](const Measurement& m) { return m.step_cv; }, {"probe", "token"}, "CV of step lengths"},
      {"step_ratio_cv", [](const Measurement& m) { return m.step_ratio_cv; }, {"probe", "token"},
       "CV of consecutive step-length ratios (0 = geometric spacing)"},
      {"log_step_rate", [](const Measurement& m) { return m.log_step_rate; }, {"probe", "token"},
       "slope of log step length against l"},
      {"log_step_r2", [](const Measurement& m) { return m.log_step_r2; }, {"probe", "token"}, "R^2 of that fit"},
      {"inverse_sigma_slope", [](const Measurement& m) { return m.inverse_sigma_slope; }, {"probe", "token"},
       "slope of 1/s_1(J^l) against l"},
      {"inverse_sigma_r2", [](const Measurement& m) { return m.inverse_sigma_r2; }, {"probe", "token"},
       "R^2 of that fit"},
  };
  return table;
}

/// Bookkeeping columns beside /measurement/step: name, integer?, description.
struct RecordColumn {
  const char* name;
  bool integer;
  const char* description;
};
const std::vector<RecordColumn> kRecordColumns = {
    {"scheduled_step", true, "step the schedule asked for; < step when the overhead budget deferred it"},
    {"tokens_seen", true, "training tokens seen at the measurement"},
    {"wall_seconds", false, "run wall time when the measurement started (s)"},
    {"measure_seconds", false, "wall time of the measurement (s)"},
    {"train_seconds", false, "training wall time since the previous measurement (s)"},
};

}  // namespace

std::string describe(const MeasurementOptions& o) {
  std::ostringstream out;
  out << "k_grid=";
  for (size_t i = 0; i < o.k_grid.size(); ++i) out << (i ? "," : "") << o.k_grid[i];
  out << " k_fractions=";
  for (size_t i = 0; i < o.k_fractions.size(); ++i) out << (i ? "," : "") << o.k_fractions[i];
  const char* modes[] = {"last", "list", "all"};
  out << " tokens=" << modes[static_cast<int>(o.tokens.mode)] << ":";
  for (size_t i = 0; i < o.tokens.tokens.size(); ++i) out << (i ? "," : "") << o.tokens.tokens[i];
  out << " pairs=";
  for (size_t i = 0; i < o.tokens.context_pairs.size(); ++i) {
    out << (i ? "," : "") << o.tokens.context_pairs[i].input << ":" << o.tokens.context_pairs[i].output;
  }
  const char* spectra[] = {"auto", "exact", "randomized"};
  out << " spectrum=" << spectra[static_cast<int>(o.spectrum)]
      << " precision=" << (o.precision == SvdPrecision::kFloat64 ? "fp64" : "fp32");
  if (o.spectrum != SpectrumMethod::kExact) {
    out << " oversample=" << o.randomized.oversample << " power_iterations=" << o.randomized.power_iterations
        << " seed=" << o.randomized.seed;
  }
  return out.str();
}

struct CouplingLog::Impl {
  std::string path;
  Handle file;
  bool swmr = false;
  std::map<std::string, GrowingDataset> datasets;  // by path inside the file

  GrowingDataset& ds(const std::string& name) { return datasets.at(name); }

  void open_existing(const std::string& name, hid_t type) {
    datasets[name] = GrowingDataset::open(file.get(), name, type);
  }

  /// After every append: in SWMR mode flush the datasets under `group` (what was written),
  /// otherwise the whole file. Either way every completed row survives a crash.
  void flush(const std::string& group = "/") {
    if (swmr) {
      for (auto& [name, d] : datasets) {
        if (name.rfind(group, 0) == 0) d.flush();
      }
    } else {
      check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), "flushing " + path);
    }
  }

  void start_swmr() {
    check(H5Fstart_swmr_write(file.get()), "starting SWMR mode on " + path);
    swmr = true;
  }

  bool has_measurements() const { return H5Lexists(file.get(), "/measurement/step", H5P_DEFAULT) > 0; }

  void open_measurement_datasets() {
    open_existing("/measurement/step", H5T_NATIVE_INT64);
    for (const auto& c : kRecordColumns) {
      open_existing(std::string("/measurement/") + c.name, c.integer ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE);
    }
    open_existing("/measurement/nonfinite", H5T_NATIVE_INT8);
    for (const auto& f : fields()) open_existing(std::string("/measurement/") + f.name, H5T_NATIVE_DOUBLE);
  }

  /// Creates the scales and per-measurement datasets from the first measurement's shapes.
  void create_measurement_datasets(const Measurement& m) {
    Handle group(check(H5Gopen2(file.get(), "/measurement", H5P_DEFAULT), "opening /measurement"), H5Gclose);
    const hid_t g = group.get();
    write_scale(g, "probe", range(0, m.probes), "probe index (rows of /probes)");
    write_scale(g, "token", m.tokens, "measured token position t (J_tt)");
    write_scale(g, "orientation", {0, 1}, "0 = ujv (U2^T J1 V2), 1 = vju (V2^T J1 U2)");
    write_scale(g, "normalisation", {0, 1}, "0 = norm (||S1||_F), 1 = trace (trace S1)");
    write_scale(g, "k", m.k_grid, "K: number of top singular pairs");
    write_scale(g, "layer", range(1, m.blocks), "block l = 1..L (row: the Jacobian diagonalised)");
    write_scale(g, "basis_layer", range(1, m.blocks), "block supplying the singular basis (column)");
    write_scale(g, "state", range(0, m.blocks + 1), "residual state index l = 0..L");
    write_scale(g, "rank", range(1, m.singular_values.size(-1)), "singular value index k = 1..Kmax");

    auto step = GrowingDataset::create(g, "step", H5T_STD_I64LE, {});
    check(H5DSset_scale(step.id(), "step"), "H5DSset_scale step");
    write_string_attribute(step.id(), "description", "optimizer updates completed at the measurement");
    datasets["/measurement/step"] = std::move(step);
    for (const auto& c : kRecordColumns) {
      auto d = GrowingDataset::create(g, c.name, c.integer ? H5T_STD_I64LE : H5T_IEEE_F64LE, {});
      write_string_attribute(d.id(), "description", c.description);
      attach(d.id(), g, {"step"});
      datasets[std::string("/measurement/") + c.name] = std::move(d);
    }
    auto nonfinite = GrowingDataset::create(g, "nonfinite", H5T_STD_I8LE, {});
    write_string_attribute(nonfinite.id(), "description", "1 when some value of this measurement is NaN or infinite");
    attach(nonfinite.id(), g, {"step"});
    datasets["/measurement/nonfinite"] = std::move(nonfinite);
    for (const auto& f : fields()) {
      const auto value = f.get(m);
      std::vector<hsize_t> item(value.sizes().begin(), value.sizes().end());
      auto d = GrowingDataset::create(g, f.name, H5T_IEEE_F64LE, item);
      write_string_attribute(d.id(), "description", f.description);
      std::vector<std::string> axes{"step"};
      axes.insert(axes.end(), f.axes.begin(), f.axes.end());
      attach(d.id(), g, axes);
      datasets[std::string("/measurement/") + f.name] = std::move(d);
    }
  }

  void truncate(const std::string& step_name, const std::vector<std::string>& columns, int64_t keep_below) {
    auto& step = ds(step_name);
    const hsize_t rows = step.rows();
    std::vector<int64_t> steps(rows);
    if (rows > 0) check(H5Dread(step.id(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps.data()), "reading steps");
    auto keep = static_cast<hsize_t>(std::lower_bound(steps.begin(), steps.end(), keep_below) - steps.begin());
    // A writer killed between its per-dataset flushes leaves columns one row longer or shorter
    // than the step column: only rows that every column holds are complete.
    for (const auto& column : columns) keep = std::min(keep, ds(column).rows());
    if (step.rows() != keep) step.truncate(keep);
    for (const auto& column : columns) {
      if (ds(column).rows() != keep) ds(column).truncate(keep);
    }
  }
};

CouplingLog::CouplingLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CouplingLog::CouplingLog(CouplingLog&&) noexcept = default;
CouplingLog& CouplingLog::operator=(CouplingLog&&) noexcept = default;
CouplingLog::~CouplingLog() = default;

const std::string& CouplingLog::path() const { return impl_->path; }

namespace {

const std::vector<std::pair<std::string, std::vector<std::pair<std::string, hid_t>>>>& scalar_groups() {
  static const std::vector<std::pair<std::string, std::vector<std::pair<std::string, hid_t>>>> groups = {
      {"/train",
       {{"loss", H5T_NATIVE_DOUBLE}, {"lr", H5T_NATIVE_DOUBLE}, {"tokens_seen", H5T_NATIVE_INT64},
        {"wall_seconds", H5T_NATIVE_DOUBLE}}},
      {"/eval", {{"val_loss", H5T_NATIVE_DOUBLE}}},
  };
  return groups;
}

std::vector<std::string> columns_of(const std::string& group) {
  std::vector<std::string> names;
  for (const auto& [g, columns] : scalar_groups()) {
    if (g != group) continue;
    for (const auto& [name, type] : columns) names.push_back(group + "/" + name);
  }
  return names;
}

std::vector<std::string> measurement_columns() {
  std::vector<std::string> names = {"/measurement/nonfinite"};
  for (const auto& c : kRecordColumns) names.push_back(std::string("/measurement/") + c.name);
  for (const auto& f : fields()) names.push_back(std::string("/measurement/") + f.name);
  return names;
}

void write_probes(hid_t file, const at::Tensor& probes) {
  if (!probes.defined()) return;
  const bool integer = !at::isFloatingType(probes.scalar_type());
  const auto data = probes.to(integer ? at::kLong : at::kFloat).cpu().contiguous();
  std::vector<hsize_t> dims(data.sizes().begin(), data.sizes().end());
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  Handle ds(check(H5Dcreate2(file, "probes", integer ? H5T_STD_I64LE : H5T_IEEE_F32LE, space.get(), H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
                  "creating /probes"),
            H5Dclose);
  check(H5Dwrite(ds.get(), integer ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                 data.data_ptr()),
        "writing /probes");
}

}  // namespace

CouplingLog CouplingLog::create(const std::string& path, const LogMetadata& metadata) {
  silence_hdf5_errors();
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw IoError("log path " + path + " is a directory: give a file name such as " + path + "/coupling.h5");
  if (fs::exists(path, ec)) {
    throw IoError("log " + path + " already exists: resume the run to continue it, or choose another log path "
                  "(it is never overwritten)");
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get());
  if (file < 0) throw IoError("cannot create log " + path + ": check that its directory exists and is writable");
  impl->file = Handle(file, H5Fclose);

  write_int_attribute(file, "schema_version", kSchemaVersion);
  write_string_attribute(file, "libcoupling_version", version());
  write_string_attribute(file, "git_revision", git_revision());
  write_string_attribute(file, "model", metadata.model);
  write_string_attribute(file, "model_config", metadata.model_config);
  write_string_attribute(file, "engine_config", metadata.engine_config);
  write_int_attribute(file, "seed", metadata.seed);
  write_int_attribute(file, "world_size", metadata.world_size);
  write_string_attribute(file, "training_precision", metadata.training_precision);
  write_probes(file, metadata.probes);
  make_group(file, "measurement");
  for (const auto& [group_name, columns] : scalar_groups()) {
    Handle group = make_group(file, group_name);
    auto step = GrowingDataset::create(group.get(), "step", H5T_STD_I64LE, {});
    const std::string scale_name = group_name.substr(1) + "_step";
    check(H5DSset_scale(step.id(), scale_name.c_str()), "H5DSset_scale " + scale_name);
    impl->datasets[group_name + "/step"] = std::move(step);
    for (const auto& [name, type] : columns) {
      auto d = GrowingDataset::create(group.get(), name, type == H5T_NATIVE_INT64 ? H5T_STD_I64LE : H5T_IEEE_F64LE, {});
      attach(d.id(), group.get(), {"step"});
      impl->datasets[group_name + "/" + name] = std::move(d);
    }
  }
  impl->flush();
  return CouplingLog(std::move(impl));
}

CouplingLog CouplingLog::resume(const std::string& path, const LogMetadata& metadata, int64_t last_step) {
  silence_hdf5_errors();
  if (!fs::is_regular_file(path)) throw LogError("no log at " + path + " to resume: was the run started with another log path?");
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    throw LogError(path + " is not an HDF5 file (or is corrupt): it was left untouched; move it away or give another log path");
  }
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  // First a read-only look, so that a foreign file is never modified.
  {
    Handle readonly(H5Fopen(path.c_str(), H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl.get()), H5Fclose);
    if (!readonly.valid()) throw LogError("cannot open " + path + " (corrupt HDF5 file?): it was left untouched");
    const auto schema = read_int_attribute(readonly.get(), "schema_version");
    if (!schema || !read_string_attribute(readonly.get(), "engine_config")) {
      throw LogError(path + " is not a libcoupling log (no schema_version): it was left untouched");
    }
    if (*schema > kSchemaVersion) {
      throw LogError(path + " has schema version " + std::to_string(*schema) + ", newer than this libcoupling (" +
                     std::to_string(kSchemaVersion) + "): upgrade libcoupling");
    }
    const std::pair<const char*, const std::string*> expected[] = {
        {"model", &metadata.model}, {"model_config", &metadata.model_config}, {"engine_config", &metadata.engine_config}};
    for (const auto& [name, value] : expected) {
      const auto stored = read_string_attribute(readonly.get(), name);
      if (stored != *value) {
        throw LogError("log " + path + " belongs to a run with a different " + name + " (log: '" + stored.value_or("") +
                       "', this run: '" + *value + "'): resume with the original settings or choose another log path");
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
    throw LogError("cannot reopen " + path + " for writing: check its permissions; if a crashed writer left it "
                   "locked, `h5clear -s -i " + path + "` (hdf5-tools) repairs it");
  }
  impl->file = Handle(file, H5Fclose);
  check(H5Fincrement_filesize(file, 0), "repairing the end-of-allocation mark of " + path);

  for (const auto& [group_name, columns] : scalar_groups()) {
    impl->open_existing(group_name + "/step", H5T_NATIVE_INT64);
    for (const auto& [name, type] : columns) impl->open_existing(group_name + "/" + name, type);
  }
  // Rows with step < limit stay; last_step = INT64_MAX keeps every row (no overflow).
  const int64_t after_last = last_step == std::numeric_limits<int64_t>::max() ? last_step : last_step + 1;
  impl->truncate("/train/step", columns_of("/train"), last_step);
  impl->truncate("/eval/step", columns_of("/eval"), after_last);
  if (impl->has_measurements()) {
    impl->open_measurement_datasets();
    impl->truncate("/measurement/step", measurement_columns(), after_last);
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
  // Convert and check every field before the first write, so a mismatch leaves no partial row.
  std::vector<at::Tensor> values;
  bool nonfinite = false;
  for (const auto& f : fields()) {
    auto value = f.get(m).to(at::kDouble).cpu().contiguous();
    const auto& item = impl.ds(std::string("/measurement/") + f.name).item();
    if (!std::equal(item.begin(), item.end(), value.sizes().begin(), value.sizes().end())) {
      throw ConfigError(std::string("measurement field ") + f.name + " has shape " + c10::str(value.sizes()) +
                        ", unlike earlier measurements in " + impl.path + ": probes, tokens and K must stay fixed");
    }
    nonfinite = nonfinite || !at::isfinite(value).all().item<bool>();
    values.push_back(value);
  }
  impl.ds("/measurement/step").append(&record.step);
  impl.ds("/measurement/scheduled_step").append(&record.scheduled_step);
  impl.ds("/measurement/tokens_seen").append(&record.tokens_seen);
  impl.ds("/measurement/wall_seconds").append(&record.wall_seconds);
  impl.ds("/measurement/measure_seconds").append(&record.measure_seconds);
  impl.ds("/measurement/train_seconds").append(&record.train_seconds);
  const int8_t flag = nonfinite ? 1 : 0;
  impl.ds("/measurement/nonfinite").append(&flag);
  for (size_t i = 0; i < values.size(); ++i) {
    impl.ds(std::string("/measurement/") + fields()[i].name).append(values[i].data_ptr<double>());
  }
  impl.flush("/measurement/");
}

void CouplingLog::append_training(const TrainingRecord& r) {
  impl_->ds("/train/step").append(&r.step);
  impl_->ds("/train/loss").append(&r.loss);
  impl_->ds("/train/lr").append(&r.lr);
  impl_->ds("/train/tokens_seen").append(&r.tokens_seen);
  impl_->ds("/train/wall_seconds").append(&r.wall_seconds);
  impl_->flush("/train/");
}

void CouplingLog::append_eval(int64_t step, double val_loss) {
  impl_->ds("/eval/step").append(&step);
  impl_->ds("/eval/val_loss").append(&val_loss);
  impl_->flush("/eval/");
}

std::vector<int64_t> CouplingLog::measured_steps() const {
  if (!impl_->has_measurements()) return {};
  auto& step = impl_->ds("/measurement/step");
  std::vector<int64_t> steps(step.rows());
  if (!steps.empty()) {
    check(H5Dread(step.id(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps.data()), "reading /measurement/step");
  }
  return steps;
}

}  // namespace coupling
