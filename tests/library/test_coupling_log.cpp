// The HDF5 coupling log: layout read back by h5py, refusal to overwrite, resume truncation,
// identity checks that leave foreign/mismatched files untouched, and survival of SIGKILL.
#include "coupling/error.h"
#include "coupling/log/coupling_log.h"
#include "engine_support.h"
#include "temp_files.h"
#include "test_paths.h"

#include "mixer_model.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <limits>

namespace {

using test_support::TempDir;

struct Fixture {
  std::unique_ptr<coupling::LambdaAdapter> adapter;
  at::Tensor probes;
  coupling::MeasurementOptions options;
  coupling::LogMetadata metadata;
};

Fixture make_fixture() {
  auto g = at::detail::createCPUGenerator(41);
  Fixture f;
  f.adapter = engine_support::linear_blocks(
      {at::randn({8, 8}, g, at::TensorOptions()) * 0.3, at::randn({8, 8}, g, at::TensorOptions()) * 0.3});
  f.probes = at::randn({2, 4, 8}, g, at::TensorOptions());
  f.options.k_grid = {2, 4};
  f.metadata.model = "linear";
  f.metadata.model_config = "d = 8";
  f.metadata.engine_config = f.options.str();
  f.metadata.seed = 7;
  f.metadata.probes = f.probes;
  f.metadata.data_sha256 = std::string(64, 'a');
  return f;
}

void append_steps(coupling::CouplingLog& log, Fixture& f, const std::vector<int64_t>& steps) {
  for (int64_t step : steps) {
    const auto m = coupling::measure(*f.adapter, f.probes, f.options);
    log.append({step, step, step * 100, 1.0 * step, m.timings.total, 0.5}, m);
  }
}

/// A log of 25 training steps measured at steps 0, 10 and 20.
void write_training_run(const std::string& path, Fixture& f) {
  auto log = coupling::CouplingLog::create(path, f.metadata);
  for (int64_t s = 0; s < 25; ++s) log.append_training({s, 1.0, 1e-3, s, 0.0});
  append_steps(log, f, {0, 10, 20});
}

int run_python(const std::string& args) {
  const std::string command =
      std::string(test_paths::kPython) + " " + test_paths::kTestSourceDir + "/python/check_log.py " + args;
  return std::system(command.c_str());
}

TEST(CouplingLog, WritesAReadableSelfDescribingFile) {
  TempDir dir;
  auto f = make_fixture();
  {
    auto log = coupling::CouplingLog::create(dir.file("c.h5"), f.metadata);
    for (int64_t s = 0; s < 5; ++s) log.append_training({s, 3.0 - 0.1 * s, 1e-3, s * 64, 0.1 * s});
    append_steps(log, f, {0, 5, 10});
    log.append_eval({10, 2.5});
    EXPECT_EQ(log.measured_steps(), (std::vector<int64_t>{0, 5, 10}));
  }
  EXPECT_EQ(run_python(dir.file("c.h5") + " 0,5,10 --train-rows 5"), 0);
}

TEST(CouplingLog, NeverOverwritesAndRejectsBadPaths) {
  TempDir dir;
  auto f = make_fixture();
  coupling::CouplingLog::create(dir.file("c.h5"), f.metadata);
  EXPECT_THROW(coupling::CouplingLog::create(dir.file("c.h5"), f.metadata), coupling::IoError);
  EXPECT_THROW(coupling::CouplingLog::create(dir.path().string(), f.metadata), coupling::IoError);
  EXPECT_THROW(coupling::CouplingLog::create(dir.file("missing/c.h5"), f.metadata), coupling::IoError);
}

TEST(CouplingLog, ResumeDropsRowsAfterTheCheckpointAndContinues) {
  TempDir dir;
  auto f = make_fixture();
  write_training_run(dir.file("c.h5"), f);
  {
    auto log = coupling::CouplingLog::resume(dir.file("c.h5"), f.metadata, 10);
    EXPECT_EQ(log.measured_steps(), (std::vector<int64_t>{0, 10}));
    for (int64_t s = 10; s < 30; ++s) log.append_training({s, 1.0, 1e-3, s, 0.0});
    append_steps(log, f, {20, 30});
    EXPECT_THROW(append_steps(log, f, {30}), coupling::ConfigError);  // steps must increase
  }
  EXPECT_EQ(run_python(dir.file("c.h5") + " 0,10,20,30 --train-rows 30"), 0);
  {  // INT64_MAX keeps every row (how coupling-analyze continues a log)
    auto log = coupling::CouplingLog::resume(dir.file("c.h5"), f.metadata, std::numeric_limits<int64_t>::max());
    EXPECT_EQ(log.measured_steps(), (std::vector<int64_t>{0, 10, 20, 30}));
  }
}

TEST(CouplingLog, ResumeRepairsAnAppendTornBetweenFlushes) {
  // A writer killed between the per-dataset flushes of one append leaves some measurement
  // columns a row longer than /measurement/step (seen once in cli.coupling_run): resume must
  // cut every column back to the rows all of them hold.
  TempDir dir;
  auto f = make_fixture();
  {
    auto log = coupling::CouplingLog::create(dir.file("c.h5"), f.metadata);
    append_steps(log, f, {0, 10});
  }
  const std::string tear = std::string(test_paths::kPython) + " -c \"import h5py; f = h5py.File('" + dir.file("c.h5") +
                           "', 'r+'); [f['measurement'][n].resize(3, axis=0) for n in ('depth_coupling', "
                           "'line_shape_score')]\"";
  ASSERT_EQ(std::system(tear.c_str()), 0);
  {
    auto log = coupling::CouplingLog::resume(dir.file("c.h5"), f.metadata, 10);
    EXPECT_EQ(log.measured_steps(), (std::vector<int64_t>{0, 10}));
    append_steps(log, f, {20});
  }
  EXPECT_EQ(run_python(dir.file("c.h5") + " 0,10,20"), 0);  // every column has 3 rows again
}

TEST(CouplingLog, ResumeKeepsOnlyTheOrderedStartOfAStepColumnThatDoesNotIncrease) {
  // Rows of an earlier failure can leave steps out of order (a full disk once left [0 0 1500 ...]
  // in /eval): resume keeps rows while the steps increase, never a binary search over them. Such
  // logs predate the row checksums, so the scrambled log has none (and still resumes).
  TempDir dir;
  auto f = make_fixture();
  {
    auto log = coupling::CouplingLog::create(dir.file("c.h5"), f.metadata);
    append_steps(log, f, {0, 10, 20});
    for (int64_t step : {10, 10, 5}) log.append_eval({step, 1.0});
  }
  const std::string scramble = std::string(test_paths::kPython) + " -c \"import h5py; f = h5py.File('" +
                               dir.file("c.h5") +
                               "', 'r+'); f['measurement/step'][:] = [0, 20, 10]; "
                               "del f['measurement/row_crc32'], f['eval/row_crc32'], f['train/row_crc32']\"";
  ASSERT_EQ(std::system(scramble.c_str()), 0);
  {
    auto log = coupling::CouplingLog::resume(dir.file("c.h5"), f.metadata, 30);
    EXPECT_EQ(log.measured_steps(), (std::vector<int64_t>{0, 20}));
    append_steps(log, f, {30});
  }
  EXPECT_EQ(run_python(dir.file("c.h5") + " 0,20,30"), 0);
  const std::string eval =
      std::string(test_paths::kPython) + " -c \"import h5py; f = h5py.File('" + dir.file("c.h5") +
      "', 'r', swmr=True, libver='latest'); assert list(f['eval/step'][:]) == [10], f['eval/step'][:]\"";
  EXPECT_EQ(std::system(eval.c_str()), 0);
}

TEST(CouplingLog, ResumeRefusesADamagedRowItKeepsAndLeavesTheFileUntouched) {
  TempDir dir;
  auto f = make_fixture();
  write_training_run(dir.file("c.h5"), f);
  // One value of the step-10 measurement changes after it was written (a bit flip, an editor).
  const std::string damage = std::string(test_paths::kPython) + " -c \"import h5py; f = h5py.File('" +
                             dir.file("c.h5") + "', 'r+'); f['measurement/line_shape_score'][1, 0, 0] += 1e-9\"";
  ASSERT_EQ(std::system(damage.c_str()), 0);
  EXPECT_NE(run_python(dir.file("c.h5") + " 0,10,20"), 0);  // the Python reader sees it too
  const auto before = test_support::read_bytes(dir.file("c.h5"));
  try {
    coupling::CouplingLog::resume(dir.file("c.h5"), f.metadata, 20);
    FAIL() << "a damaged row was kept";
  } catch (const coupling::LogError& e) {
    EXPECT_NE(std::string(e.what()).find("is damaged: row 1 (step 10) of /measurement does not match its row_crc32"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(test_support::read_bytes(dir.file("c.h5")), before);
  // Resumed from the step-0 checkpoint, the damaged row is one that resume drops: no refusal.
  auto log = coupling::CouplingLog::resume(dir.file("c.h5"), f.metadata, 5);
  EXPECT_EQ(log.measured_steps(), (std::vector<int64_t>{0}));
}

TEST(CouplingLog, ResumeRefusesForeignCorruptOrMismatchedFilesAndLeavesThemUntouched) {
  TempDir dir;
  auto f = make_fixture();
  {
    auto log = coupling::CouplingLog::create(dir.file("c.h5"), f.metadata);
    append_steps(log, f, {0});
  }
  const auto before = test_support::read_bytes(dir.file("c.h5"));
  auto other = f.metadata;
  other.engine_config = "k_grid=3";
  try {
    coupling::CouplingLog::resume(dir.file("c.h5"), other, 0);
    FAIL() << "engine mismatch accepted";
  } catch (const coupling::LogError& e) {
    EXPECT_NE(std::string(e.what()).find("different engine_config"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test_support::read_bytes(dir.file("c.h5")), before);
  // The run's identity: its seed, its data and its probe inputs.
  for (const auto& [what, change] : std::vector<std::pair<std::string, std::function<void(coupling::LogMetadata&)>>>{
           {"different seed (log: 7, this run: 8)", [](coupling::LogMetadata& m) { m.seed = 8; }},
           {"run on other data (data_sha256 of the log: aaaaaaaaaaaaaaaa..., of this run's data: bbbb",
            [](coupling::LogMetadata& m) { m.data_sha256 = std::string(64, 'b'); }},
           {"different probes", [](coupling::LogMetadata& m) { m.probes = m.probes + 1e-3; }},
           {"different probes", [](coupling::LogMetadata& m) { m.probes = m.probes.narrow(0, 0, 1); }}}) {
    auto foreign_run = f.metadata;
    change(foreign_run);
    try {
      coupling::CouplingLog::resume(dir.file("c.h5"), foreign_run, 0);
      FAIL() << what << " accepted";
    } catch (const coupling::LogError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      if (what.rfind("different seed", 0) == 0) {
        EXPECT_EQ(e.setting(), "LogMetadata::seed");
      }
    }
    EXPECT_EQ(test_support::read_bytes(dir.file("c.h5")), before);
  }

  test_support::write_text(dir.file("text.h5"), "not hdf5 at all", 100);
  EXPECT_THROW(coupling::CouplingLog::resume(dir.file("text.h5"), f.metadata, 0), coupling::LogError);
  const std::string make_foreign = std::string(test_paths::kPython) + " -c \"import h5py; h5py.File('" +
                                   dir.file("foreign.h5") + "', 'w')['x'] = [1, 2]\"";
  ASSERT_EQ(std::system(make_foreign.c_str()), 0);
  const auto foreign = test_support::read_bytes(dir.file("foreign.h5"));
  try {
    coupling::CouplingLog::resume(dir.file("foreign.h5"), f.metadata, 0);
    FAIL() << "foreign file accepted";
  } catch (const coupling::LogError& e) {
    EXPECT_NE(std::string(e.what()).find("not a libcoupling log"), std::string::npos) << e.what();
  }
  EXPECT_EQ(test_support::read_bytes(dir.file("foreign.h5")), foreign);
}

TEST(CouplingLog, LogsTokenBlockTokenAndContextCouplingWithTheirAxes) {
  TempDir dir;
  at::manual_seed(43);
  // Axes of distinct sizes: 5 probes, 4 blocks, one K, 3 tokens, 12 block-tokens, 8 contexts.
  auto adapter = mixer_adapter(MixerModel(32, 8, 4));
  const auto probes = at::randint(32, {5, 6}, at::kLong);
  coupling::MeasurementOptions options;
  options.k_grid = {4};
  options.tokens.mode = coupling::TokenSelection::Mode::kList;
  options.tokens.tokens = {1, 3, -1};
  options.tokens.context_pairs = {{0, 5}, {2, 5}};
  coupling::LogMetadata metadata;
  metadata.model = "mixer";
  metadata.engine_config = options.str();
  metadata.probes = probes;
  auto log = coupling::CouplingLog::create(dir.file("c.h5"), metadata);
  for (int64_t step : {0, 5}) {
    const auto m = coupling::measure(*adapter, probes, options);
    log.append({step, step, step, 0.0, 0.0, 0.0}, m);
  }
  ASSERT_EQ(run_python(dir.file("c.h5") + " 0,5"), 0);
  // Every logged field of the registry is there, with the registry's shape after the step axis.
  const std::string check = std::string(test_paths::kPython) + " -c \"import h5py; m = h5py.File('" + dir.file("c.h5") +
                            "', 'r', swmr=True, libver='latest')['measurement']; "
                            "assert m['token_coupling'].shape == (2, 5, 4, 2, 2, 1, 3, 3), m['token_coupling'].shape; "
                            "assert m['token_mean_offdiag_avg'].shape == (2, 2, 2, 1); "
                            "assert m['block_token_coupling'].shape == (2, 5, 2, 2, 1, 12, 12); "
                            "assert m['block_token_mean_offdiag_avg'].shape == (2, 2, 2, 1); "
                            "assert m['context_coupling'].shape == (2, 5, 2, 2, 1, 8, 8); "
                            "assert m['context_same_input_avg'].shape == (2, 2, 2, 1); "
                            "assert m.file['context_pairs'][:].tolist() == [[0, 5], [2, 5]]; "
                            "assert list(m['basis_token'][:]) == [1, 3, 5]; "
                            "assert m['token_coupling'].dims[7][0].name == '/measurement/basis_token'; "
                            "assert m['token_coupling'].attrs['units'] == '1'\"";
  EXPECT_EQ(std::system(check.c_str()), 0);
  // A later measurement with other tokens would silently misalign rows: refused.
  options.tokens.tokens = {1, -1};
  const auto other = coupling::measure(*adapter, probes, options);
  EXPECT_THROW(log.append({9, 9, 9, 0.0, 0.0, 0.0}, other), coupling::ConfigError);
}

/// Logs written by earlier code (tests/fixtures/schema-N-log) are refused for appending, in one
/// line naming both versions, and left untouched.
void expect_old_log_refused(int version) {
  TempDir dir;
  const std::string fixture =
      std::string(test_paths::kTestSourceDir) + "/fixtures/schema-" + std::to_string(version) + "-log/run/coupling.h5";
  std::filesystem::copy_file(fixture, dir.file("old.h5"));
  const std::string before = test_support::read_bytes(dir.file("old.h5"));
  auto f = make_fixture();
  try {
    coupling::CouplingLog::resume(dir.file("old.h5"), f.metadata, 2);
    FAIL() << "a schema-" << version << " log was accepted";
  } catch (const coupling::LogError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("schema version " + std::to_string(version)), std::string::npos) << message;
    EXPECT_NE(message.find("writes version " + std::to_string(coupling::CouplingLog::kSchemaVersion)),
              std::string::npos)
        << message;
  }
  EXPECT_EQ(test_support::read_bytes(dir.file("old.h5")), before);
}

TEST(CouplingLog, RefusesTheSchemaOneFixtureNamingBothVersions) { expect_old_log_refused(1); }

TEST(CouplingLog, RefusesTheSchemaThreeFixtureNamingBothVersions) { expect_old_log_refused(3); }

TEST(LogSchema, DocsTablesAreTheRegistrys) {
  const std::string docs =
      test_support::read_bytes(std::string(test_paths::kTestSourceDir) + "/../docs/hdf5-schema.md");
  const std::string begin = "<!-- schema tables: generated from the field registry -->\n";
  const std::string end = "<!-- end of schema tables -->";
  const auto from = docs.find(begin), to = docs.find(end);
  ASSERT_NE(from, std::string::npos) << "docs/hdf5-schema.md lacks the line " << begin;
  ASSERT_NE(to, std::string::npos);
  EXPECT_EQ(docs.substr(from + begin.size(), to - from - begin.size()), coupling::schema_markdown())
      << "docs/hdf5-schema.md is out of date: replace the text between the markers with:\n"
      << coupling::schema_markdown();
}

TEST(CouplingLog, RefusesANewerSchema) {
  TempDir dir;
  auto f = make_fixture();
  coupling::CouplingLog::create(dir.file("c.h5"), f.metadata);
  const std::string bump = std::string(test_paths::kPython) + " -c \"import h5py; h5py.File('" + dir.file("c.h5") +
                           "', 'r+').attrs['schema_version'] = 99\"";
  ASSERT_EQ(std::system(bump.c_str()), 0);
  try {
    coupling::CouplingLog::resume(dir.file("c.h5"), f.metadata, 0);
    FAIL() << "newer schema accepted";
  } catch (const coupling::LogError& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
  }
}

TEST(CouplingLog, FlagsNonFiniteMeasurements) {
  TempDir dir;
  auto f = make_fixture();
  auto g = at::detail::createCPUGenerator(42);
  auto broken = at::randn({8, 8}, g, at::TensorOptions());
  broken[0][0] = std::numeric_limits<float>::infinity();
  auto adapter = engine_support::linear_blocks({at::randn({8, 8}, g, at::TensorOptions()), broken});
  {
    auto log = coupling::CouplingLog::create(dir.file("c.h5"), f.metadata);
    append_steps(log, f, {0});
    const auto m = coupling::measure(*adapter, f.probes, f.options);
    log.append({5, 5, 0, 0.0, 0.0, 0.0}, m);
  }
  const std::string check =
      std::string(test_paths::kPython) + " -c \"import h5py, numpy as np; f = h5py.File('" + dir.file("c.h5") +
      "', 'r', swmr=True, libver='latest'); m = f['measurement']; " + "assert list(m['nonfinite'][:]) == [0, 1]; " +
      "assert np.isnan(m['depth_coupling'][1]).any() and np.isfinite(m['depth_coupling'][0]).all()\"";
  EXPECT_EQ(std::system(check.c_str()), 0);
}

TEST(CouplingLog, SurvivesSigkillAndResumes) {
  TempDir dir;
  for (int completed : {1, 3}) {
    const auto path = dir.file("killed-" + std::to_string(completed) + ".h5");
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // GNU OpenMP's thread team does not survive fork(): a child that starts a parallel region
      // the parent already ran (MKL's sgemm in the pip LibTorch) waits forever on absent threads.
      at::set_num_threads(1);
      auto f = make_fixture();
      auto log = coupling::CouplingLog::create(path, f.metadata);
      std::vector<int64_t> steps;
      for (int i = 0; i < completed; ++i) steps.push_back(10 * i);
      append_steps(log, f, steps);
      for (int64_t s = 0; s < 7; ++s) log.append_training({s, 1.0, 1e-3, s, 0.0});
      std::raise(SIGKILL);  // no destructor, no close: as a crash
    }
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    std::string expected;
    for (int i = 0; i < completed; ++i) expected += std::string(i ? "," : "") + std::to_string(10 * i);
    EXPECT_EQ(run_python(path + " " + expected + " --train-rows 7"), 0) << "after kill, " << completed;
    auto f = make_fixture();
    {
      // Resumed at step 0 (a step-0 checkpoint), the step-0 row goes and is measured again.
      auto log = coupling::CouplingLog::resume(path, f.metadata, 10 * (completed - 1));
      if (completed == 1) {
        EXPECT_TRUE(log.measured_steps().empty());
        append_steps(log, f, {0});
      }
      append_steps(log, f, {10 * completed});
    }
    EXPECT_EQ(run_python(path + " " + expected + "," + std::to_string(10 * completed)), 0) << "after resume";
  }
}

}  // namespace
