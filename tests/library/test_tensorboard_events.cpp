// TensorBoard event files: CRC-32C against its check values, a written file parsed back record
// by record by a reader of its own (framing, both CRCs, the protobuf fields), a directory that
// cannot be created refused, and TensorBoardCallback beside a CouplingCallback (every hook's
// scalars, one run per directory, a resumed run's restart event). tests/python/read_tensorboard.py
// has TensorBoard itself read the files (cli.tensorboard).
#include "coupling/error.h"
#include "coupling/log/tensorboard_events.h"
#include "coupling/training/coupling_callback.h"
#include "coupling/training/tensorboard_callback.h"
#include "engine_support.h"
#include "log/crc32c.h"
#include "temp_files.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

namespace {

using coupling::detail::crc32c;
using coupling::detail::masked_crc32c;
using test_support::TempDir;

/// Little-endian unsigned integer of `bytes` bytes at `at`.
uint64_t little_endian(const std::string& data, size_t at, int bytes) {
  uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(data.at(at + i));
  return value;
}

/// One protobuf field: varint and fixed values in `number`, length-delimited ones in `bytes`.
struct ProtoField {
  int wire_type = 0;
  uint64_t number = 0;
  std::string bytes;
};

/// The fields of an encoded message by field number (the last one wins, enough here).
std::map<uint64_t, ProtoField> parse_message(const std::string& data) {
  std::map<uint64_t, ProtoField> fields;
  size_t at = 0;
  const auto varint = [&] {
    uint64_t value = 0;
    for (int shift = 0;; shift += 7) {
      const auto byte = static_cast<unsigned char>(data.at(at++));
      value |= uint64_t{byte & 0x7fu} << shift;
      if (byte < 0x80) return value;
    }
  };
  while (at < data.size()) {
    const uint64_t key = varint();
    ProtoField field;
    field.wire_type = static_cast<int>(key & 7);
    switch (field.wire_type) {
      case 0:
        field.number = varint();
        break;
      case 1:
        field.number = little_endian(data, at, 8), at += 8;
        break;
      case 5:
        field.number = little_endian(data, at, 4), at += 4;
        break;
      case 2: {
        const uint64_t size = varint();
        field.bytes = data.substr(at, size);
        at += size;
        EXPECT_LE(at, data.size());
        break;
      }
      default:
        ADD_FAILURE() << "wire type " << field.wire_type;
        return fields;
    }
    fields[key >> 3] = field;
  }
  return fields;
}

/// The records of a TFRecord file, each one's length and both masked CRCs checked.
std::vector<std::string> read_records(const std::string& path) {
  const std::string file = test_support::read_bytes(path);
  std::vector<std::string> records;
  size_t at = 0;
  while (at < file.size()) {
    EXPECT_GE(file.size() - at, 12u) << "truncated header at byte " << at;
    const uint64_t length = little_endian(file, at, 8);
    EXPECT_EQ(little_endian(file, at + 8, 4), masked_crc32c(file.data() + at, 8)) << "length CRC at byte " << at;
    EXPECT_GE(file.size() - at - 12, length + 4) << "truncated record at byte " << at;
    std::string data = file.substr(at + 12, length);
    EXPECT_EQ(little_endian(file, at + 12 + length, 4), masked_crc32c(data.data(), data.size()))
        << "data CRC at byte " << at;
    records.push_back(std::move(data));
    at += 12 + length + 4;
  }
  return records;
}

double as_double(uint64_t bits) {
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

float as_float(uint64_t bits) {
  const auto narrow = static_cast<uint32_t>(bits);
  float value;
  std::memcpy(&value, &narrow, sizeof value);
  return value;
}

TEST(TensorBoardEvents, Crc32cMatchesItsCheckValues) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0').data(), 32), 0x8A9136AAu);  // RFC 3720, B.4
  EXPECT_EQ(crc32c("", 0), 0u);
  EXPECT_EQ(crc32c("6789", 4, crc32c("12345", 5)), 0xE3069283u);  // continued
  // Masked values as TensorBoard's own masked_crc32c computes them.
  EXPECT_EQ(coupling::detail::mask_crc32c(0xE3069283u), 0xC78AB0E5u);
  EXPECT_EQ(masked_crc32c("123456789", 9), 0xC78AB0E5u);
  const char length_24[8] = {24, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(masked_crc32c(length_24, 8), 0x224B7FA3u);
}

TEST(TensorBoardEvents, WrittenFileParsesBackRecordByRecord) {
  TempDir dir;
  const std::string directory = dir.file("runs/tb");  // created with its parent
  std::string path;
  {
    coupling::TensorBoardWriter writer(directory);
    path = writer.path();
    writer.add_scalar("train/loss", 1, 2.5, 1000.25);
    writer.add_scalar("train/loss", 300, 0.1, 1001.5);
    writer.add_scalar("coupling/m_10", -7, -1e6, 1002.0);
  }  // the destructor flushes
  const std::string name = std::filesystem::path(path).filename().string();
  EXPECT_EQ(std::filesystem::path(path).parent_path(), std::filesystem::path(directory));
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  EXPECT_NE(name.find(".libcoupling"), std::string::npos) << name;

  const auto records = read_records(path);
  ASSERT_EQ(records.size(), 4u);
  const auto version = parse_message(records[0]);
  EXPECT_EQ(version.at(3).bytes, "brain.Event:2");
  EXPECT_EQ(version.count(2) ? version.at(2).number : 0, 0u);
  EXPECT_GT(as_double(version.at(1).number), 1.5e9);

  struct Want {
    std::string tag;
    int64_t step;
    float value;
    double wall_time;
  };
  const std::vector<Want> want = {
      {"train/loss", 1, 2.5F, 1000.25}, {"train/loss", 300, 0.1F, 1001.5}, {"coupling/m_10", -7, -1e6F, 1002.0}};
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(i);
    const auto event = parse_message(records[i + 1]);
    EXPECT_EQ(event.at(1).wire_type, 1);
    EXPECT_EQ(as_double(event.at(1).number), want[i].wall_time);
    EXPECT_EQ(event.at(2).wire_type, 0);
    EXPECT_EQ(static_cast<int64_t>(event.at(2).number), want[i].step);
    const auto value = parse_message(parse_message(event.at(5).bytes).at(1).bytes);
    EXPECT_EQ(value.at(1).bytes, want[i].tag);
    EXPECT_EQ(value.at(2).wire_type, 5);
    EXPECT_EQ(as_float(value.at(2).number), want[i].value);
  }

  // A second writer in the same second takes another file; the first is left alone.
  coupling::TensorBoardWriter second(directory);
  EXPECT_NE(second.path(), path);
  EXPECT_EQ(read_records(path).size(), 4u);
}

TEST(TensorBoardEvents, UncreatableDirectoryThrowsLogError) {
  TempDir dir;
  const std::string file = test_support::write_text(dir.file("plain-file"), "x");
  try {
    coupling::TensorBoardWriter writer(file + "/tb");  // below a regular file: fails even as root
    FAIL() << "no error";
  } catch (const coupling::LogError& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  EXPECT_THROW(coupling::TensorBoardWriter{file}, coupling::LogError);  // a file, not a directory
}

/// The scalar tags of an event file, each with its steps; `restarts` gets the SessionLog START steps.
std::map<std::string, std::vector<int64_t>> scalar_steps(const std::string& path, std::vector<int64_t>* restarts) {
  std::map<std::string, std::vector<int64_t>> steps;
  const auto records = read_records(path);
  for (size_t i = 1; i < records.size(); ++i) {  // records[0]: the version event
    const auto event = parse_message(records[i]);
    const auto step = static_cast<int64_t>(event.at(2).number);
    if (event.count(7) > 0) {
      EXPECT_EQ(parse_message(event.at(7).bytes).at(1).number, 1u) << "SessionLog status START";
      if (restarts) restarts->push_back(step);
      continue;
    }
    steps[parse_message(parse_message(event.at(5).bytes).at(1).bytes).at(1).bytes].push_back(step);
  }
  return steps;
}

/// Runs a TensorBoardCallback over updates first..last of a run of `last` updates (resumed when
/// first > 1), in one list with a CouplingCallback (every:4) when `log` is given; returns the
/// event file.
std::string run_with_tensorboard(const std::string& log, const std::string& board, int64_t first, int64_t last) {
  auto tensorboard = std::make_shared<coupling::TensorBoardCallback>(board);
  coupling::CallbackList list;
  if (!log.empty()) {
    auto g = at::detail::createCPUGenerator(61);
    std::shared_ptr<coupling::ModelAdapter> adapter = engine_support::linear_blocks(
        {at::randn({6, 6}, g, at::TensorOptions()), at::randn({6, 6}, g, at::TensorOptions())});
    coupling::CouplingCallbackOptions options;
    options.log_path = log;
    options.measurement.k_grid = {2, 4};
    options.schedule = coupling::MeasurementSchedule::parse("every:4");
    list.add(
        std::make_shared<coupling::CouplingCallback>(adapter, at::randn({2, 3, 6}, g, at::TensorOptions()), options));
  }
  list.add(tensorboard);
  const coupling::TrainBegin begin{first - 1, last, first > 1, 0.0};
  list.on_setup(begin);
  list.on_train_begin(begin);
  for (int64_t step = first; step <= last; ++step) {
    list.on_step_end(coupling::StepEnd(step, last)
                         .with_loss(1.0 / static_cast<double>(step))
                         .with_lr(1e-3)
                         .with_tokens_seen(step)
                         .with_wall_seconds(0.01 * static_cast<double>(step)));
    if (step % 5 == 0) list.on_eval({step, 2.0});
  }
  list.on_train_end(coupling::StepEnd(last, last).with_loss(0.1).with_lr(1e-3).with_tokens_seen(last));
  return tensorboard->path();
}

TEST(TensorBoardCallback, StreamsEveryHooksScalarsBesideTheCouplingLog) {
  TempDir dir;
  const auto path = run_with_tensorboard(dir.file("c.h5"), dir.file("tb"), 1, 10);
  const auto steps = scalar_steps(path, nullptr);
  const std::vector<int64_t> updates{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, measured{0, 4, 8, 10};
  EXPECT_EQ(steps.at("train/loss"), updates);
  EXPECT_EQ(steps.at("train/lr"), updates);
  EXPECT_EQ(steps.at("eval/val_loss"), (std::vector<int64_t>{5, 10}));
  std::set<std::string> coupling_tags;
  for (const auto& [tag, at] : steps) {
    if (tag.rfind("train/", 0) == 0 || tag.rfind("eval/", 0) == 0) continue;
    EXPECT_EQ(at, measured) << tag;
    coupling_tags.insert(tag);
  }
  // 4 summaries (offdiag, adjacent and their uncoupled nulls) x 2 orientations x 2 normalisations x 2 K, then
  // LSS, norm growth and seconds; no linearity/ tags: these probes have fewer than d + 1 tokens.
  EXPECT_EQ(coupling_tags.size(), 4u * 2 * 2 * 2 + 3);
  EXPECT_EQ(coupling_tags.count("coupling/offdiag_K2_ujv_norm"), 1u);
  EXPECT_EQ(coupling_tags.count("coupling/offdiag_null_K2_ujv_norm"), 1u);
  EXPECT_EQ(coupling_tags.count("coupling/adjacent_K4_vju_trace"), 1u);
  EXPECT_EQ(coupling_tags.count("trajectory/line_shape_score"), 1u);
}

TEST(TensorBoardCallback, OneRunPerDirectoryAndAResumedRunRestartsAtItsFirstNewStep) {
  TempDir dir;
  run_with_tensorboard("", dir.file("tb"), 1, 10);
  // Another fresh run into the same directory would mix two runs' curves: refused in on_setup.
  EXPECT_THROW(run_with_tensorboard("", dir.file("tb"), 1, 10), coupling::LogError);
  // Resumed from step 6: a new file whose first event restarts at 7, before the repeated steps.
  std::vector<int64_t> restarts;
  const auto resumed = scalar_steps(run_with_tensorboard("", dir.file("tb"), 7, 10), &restarts);
  EXPECT_EQ(restarts, (std::vector<int64_t>{7}));
  EXPECT_EQ(resumed.at("train/loss"), (std::vector<int64_t>{7, 8, 9, 10}));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.file("tb")), std::filesystem::directory_iterator()),
            2);
}

}  // namespace
