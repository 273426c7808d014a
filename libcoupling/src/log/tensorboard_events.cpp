#include "coupling/log/tensorboard_events.h"

#include "crc32c.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <utility>

namespace fs = std::filesystem;

namespace coupling {
namespace {

/// Protobuf wire format, only what an Event of scalars needs: varints, 64- and 32-bit fixed
/// values and length-delimited fields (strings, nested messages), with fields in number order.
class ProtoEncoder {
 public:
  void add_varint(uint32_t field, uint64_t value) {
    key(field, 0);
    varint(value);
  }
  void add_double(uint32_t field, double value) {
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    key(field, 1);
    little_endian(bits, 8);
  }
  void add_float(uint32_t field, float value) {
    uint32_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    key(field, 5);
    little_endian(bits, 4);
  }
  /// A string, bytes or an encoded nested message.
  void add_bytes(uint32_t field, const std::string& bytes) {
    key(field, 2);
    varint(bytes.size());
    out_ += bytes;
  }
  const std::string& bytes() const { return out_; }

 private:
  void key(uint32_t field, uint32_t wire_type) { varint((uint64_t{field} << 3) | wire_type); }
  void varint(uint64_t value) {
    for (; value >= 0x80; value >>= 7) out_ += static_cast<char>((value & 0x7f) | 0x80);
    out_ += static_cast<char>(value);
  }
  void little_endian(uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i, value >>= 8) out_ += static_cast<char>(value & 0xff);
  }
  std::string out_;
};

// Field numbers of tensorboard/compat/proto/event.proto and summary.proto.
constexpr uint32_t kEventWallTime = 1;     // double
constexpr uint32_t kEventStep = 2;         // int64
constexpr uint32_t kEventFileVersion = 3;  // string
constexpr uint32_t kEventSummary = 5;      // Summary
constexpr uint32_t kEventSessionLog = 7;   // SessionLog
constexpr uint32_t kSessionLogStatus = 1;  // enum SessionStatus
constexpr uint64_t kSessionStart = 1;      // SessionStatus.START
constexpr uint32_t kSummaryValue = 1;      // repeated Summary.Value
constexpr uint32_t kValueTag = 1;          // string
constexpr uint32_t kValueSimpleValue = 2;  // float

/// The version event every event file starts with.
std::string version_event(double wall_time) {
  ProtoEncoder event;
  event.add_double(kEventWallTime, wall_time);
  event.add_varint(kEventStep, 0);
  event.add_bytes(kEventFileVersion, "brain.Event:2");
  return event.bytes();
}

std::string scalar_event(const std::string& tag, int64_t step, double value, double wall_time) {
  ProtoEncoder summary_value;
  summary_value.add_bytes(kValueTag, tag);
  summary_value.add_float(kValueSimpleValue, static_cast<float>(value));
  ProtoEncoder summary;
  summary.add_bytes(kSummaryValue, summary_value.bytes());
  ProtoEncoder event;
  event.add_double(kEventWallTime, wall_time);
  event.add_varint(kEventStep, static_cast<uint64_t>(step));  // negative steps: 10-byte two's complement
  event.add_bytes(kEventSummary, summary.bytes());
  return event.bytes();
}

/// SessionLog START at `step`: TensorBoard drops the events of earlier files at this step or later.
std::string session_start_event(int64_t step, double wall_time) {
  ProtoEncoder session_log;
  session_log.add_varint(kSessionLogStatus, kSessionStart);
  ProtoEncoder event;
  event.add_double(kEventWallTime, wall_time);
  event.add_varint(kEventStep, static_cast<uint64_t>(step));
  event.add_bytes(kEventSessionLog, session_log.bytes());
  return event.bytes();
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& directory) {
  std::error_code ec;
  fs::create_directories(directory, ec);
  if (ec || !fs::is_directory(directory, ec)) {
    throw LogError("cannot create the TensorBoard directory " + directory + ": " +
                   (ec ? ec.message() : "it exists and is not a directory"));
  }
  const std::string stem = (fs::path(directory) / ("events.out.tfevents." + std::to_string(std::time(nullptr)) + "." +
                                                   hostname() + "." + std::to_string(::getpid()) + ".libcoupling"))
                               .string();
  // Exclusive creation: a writer opened in the same second by this process takes the next name,
  // which sorts after it (TensorBoard reads a directory's files in name order).
  for (int attempt = 0; file_ == nullptr; ++attempt) {
    path_ = attempt == 0 ? stem : stem + "." + std::to_string(attempt);
    file_ = std::fopen(path_.c_str(), "wbx");
    const int error = errno;
    if (file_ == nullptr && (error != EEXIST || attempt == 1000)) {
      throw LogError("cannot create a TensorBoard event file in " + directory + ": " + std::strerror(error));
    }
  }
  try {
    write_record(version_event(now_seconds()));
    flush();  // a valid file from the start, and a full disk is seen here
  } catch (...) {
    close();
    fs::remove(path_, ec);  // a full disk: leave no half-written file behind
    throw;
  }
}

TensorBoardWriter::~TensorBoardWriter() { close(); }

TensorBoardWriter::TensorBoardWriter(TensorBoardWriter&& other) noexcept
    : path_(std::move(other.path_)), file_(std::exchange(other.file_, nullptr)), error_(std::move(other.error_)) {}

TensorBoardWriter& TensorBoardWriter::operator=(TensorBoardWriter&& other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    file_ = std::exchange(other.file_, nullptr);
    error_ = std::move(other.error_);
  }
  return *this;
}

void TensorBoardWriter::add_scalar(const std::string& tag, int64_t step, double value, double wall_time) {
  write_record(scalar_event(tag, step, value, wall_time));
}

void TensorBoardWriter::add_scalar(const std::string& tag, int64_t step, double value) {
  add_scalar(tag, step, value, now_seconds());
}

void TensorBoardWriter::restart_at(int64_t step) { write_record(session_start_event(step, now_seconds())); }

void TensorBoardWriter::flush() {
  if (!error_.empty()) throw LogError(error_);
  if (file_ == nullptr) throw LogError("TensorBoard writer of " + path_ + " was moved from");
  if (std::fflush(file_) != 0) fail("cannot write");
}

void TensorBoardWriter::write_record(const std::string& data) {
  if (!error_.empty()) throw LogError(error_);
  if (file_ == nullptr) throw LogError("TensorBoard writer of " + path_ + " was moved from");
  std::string record(8, '\0');
  uint64_t length = data.size();
  for (int i = 0; i < 8; ++i, length >>= 8) record[i] = static_cast<char>(length & 0xff);
  const auto append_crc = [&record](uint32_t crc) {
    for (int i = 0; i < 4; ++i, crc >>= 8) record += static_cast<char>(crc & 0xff);
  };
  append_crc(detail::masked_crc32c(record.data(), 8));
  record += data;
  append_crc(detail::masked_crc32c(data.data(), data.size()));
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size()) fail("cannot write");
}

void TensorBoardWriter::fail(const std::string& what) {
  const int error = errno;
  error_ = what + " TensorBoard event file " + path_ + ": " + std::strerror(error) +
           "; it may end in a partial record, so this writer stops";
  throw LogError(error_);
}

void TensorBoardWriter::close() noexcept {
  if (file_ != nullptr) std::fclose(std::exchange(file_, nullptr));  // flushes; errors cannot be reported here
}

}  // namespace coupling
