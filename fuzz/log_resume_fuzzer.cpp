// libFuzzer: resuming a valid coupling log whose row data (step columns, a loss column) were
// replaced by fuzz bytes, at a fuzzed checkpoint step, with or without its row checksums (the
// first byte's low bit drops them, as in a log written before them). HDF5's own metadata parser is not ours and
// is not fuzzed. Either the resumed log keeps increasing steps up to the checkpoint, or a
// coupling::LogError; never a crash.
#include "coupling/engine/measurement.h"
#include "coupling/error.h"
#include "coupling/log/coupling_log.h"
#include "engine_support.h"
#include "scratch_file.h"

#include <hdf5.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

struct Template {
  ScratchFile file{"template.h5"};
  coupling::LogMetadata metadata;
  std::string bytes;  // the file's contents, rewritten per input: filesystem::copy_file fails with EINTR
                      // when libFuzzer's SIGALRM (-timeout) lands in its sendfile
};

/// A log of 6 training rows, 3 measurements and 2 evaluations, written once per process.
const Template& valid_log() {
  static Template made;
  static const bool written = [] {
    Template& t = made;
    std::filesystem::remove(t.file.path);
    auto generator = at::detail::createCPUGenerator(3);
    auto adapter = engine_support::linear_blocks({at::randn({4, 4}, generator, at::TensorOptions()) * 0.3});
    const at::Tensor probes = at::randn({1, 3, 4}, generator, at::TensorOptions());
    coupling::MeasurementOptions options;
    options.k_grid = {2};
    t.metadata.model = "linear";
    t.metadata.model_config = "d = 4";
    t.metadata.engine_config = options.str();
    t.metadata.seed = 1;
    t.metadata.probes = probes;
    {
      auto log = coupling::CouplingLog::create(t.file.path, t.metadata);
      for (int64_t step = 0; step < 6; ++step) log.append_training({step, 1.0, 1e-3, step, 0.0});
      for (int64_t step : {0, 2, 4}) {
        const auto m = coupling::measure(*adapter, probes, options);
        log.append({step, step, step * 10, 1.0 * step, m.timings.total, 0.5}, m);
      }
      log.append_eval({2, 1.5});
      log.append_eval({4, 1.4});
    }  // closed: its bytes are complete
    std::ifstream in(t.file.path, std::ios::binary);
    t.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in || t.bytes.empty()) std::abort();
    return true;
  }();
  (void)written;
  return made;
}

/// Overwrites the first elements of dataset `name` (of `type`) with the next fuzz bytes.
void overwrite(hid_t file, const char* name, hid_t type, size_t element, const uint8_t*& data, size_t& left) {
  const hid_t dataset = H5Dopen2(file, name, H5P_DEFAULT);
  if (dataset < 0) std::abort();  // the template has it
  const hid_t space = H5Dget_space(dataset);
  const auto count = static_cast<size_t>(H5Sget_simple_extent_npoints(space));
  std::vector<uint8_t> values(count * element);
  H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  const size_t used = std::min(left, values.size());
  std::memcpy(values.data(), data, used);
  data += used;
  left -= used;
  H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Sclose(space);
  H5Dclose(dataset);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Template& log_template = valid_log();
  if (size < 9) return 0;
  const bool without_checksums = (data[0] & 1) != 0;  // as a log written before row_crc32
  int64_t last_step = 0;
  std::memcpy(&last_step, data + 1, 8);
  data += 9;
  size -= 9;
  static const ScratchFile copy("log.h5");
  const std::string& path = copy.path;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(log_template.bytes.data(), static_cast<std::streamsize>(log_template.bytes.size()));
    if (!out.flush()) std::abort();
  }
  {
    const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    overwrite(file, "/measurement/step", H5T_NATIVE_INT64, 8, data, size);
    overwrite(file, "/train/step", H5T_NATIVE_INT64, 8, data, size);
    overwrite(file, "/eval/step", H5T_NATIVE_INT64, 8, data, size);
    overwrite(file, "/train/loss", H5T_NATIVE_DOUBLE, 8, data, size);
    if (without_checksums) {
      for (const char* checksum : {"/measurement/row_crc32", "/train/row_crc32", "/eval/row_crc32"}) {
        H5Ldelete(file, checksum, H5P_DEFAULT);
      }
    }
    H5Fclose(file);
  }
  try {
    auto log = coupling::CouplingLog::resume(path, log_template.metadata, last_step);
    const auto steps = log.measured_steps();
    for (size_t i = 0; i < steps.size(); ++i) {
      if (steps[i] > last_step || (i > 0 && steps[i] <= steps[i - 1])) std::abort();
    }
  } catch (const coupling::LogError&) {
  }
  return 0;
}
