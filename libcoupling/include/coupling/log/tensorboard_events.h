// TensorBoard event files: scalar curves that `tensorboard --logdir DIR` plots, written without
// TensorFlow, protobuf or LibTorch.
//
// What TensorBoard reads: every file in a directory whose name contains "tfevents", in name
// order. Each file is a sequence of TFRecords (a little-endian uint64 length, the masked CRC-32C
// of those 8 bytes, the data, the masked CRC-32C of the data), each holding one serialized
// tensorboard.Event (tensorboard/compat/proto/event.proto, summary.proto): first the version
// event (file_version "brain.Event:2"), then one Event per scalar: wall_time, step and a
// Summary with one Value{tag, simple_value}. The protobuf is encoded by hand in the .cpp.
//
// Why the CRCs are tested: TensorBoard's loader checks both CRCs of every record and, at the
// first one that does not match, stops reading the file without an error (a debug-level log
// line): that scalar and every later one are missing from the plots and nothing says why. So the
// CRC-32C is checked against its standard check values, a written file is parsed back by an
// independent reader (tests/library/test_tensorboard_events.cpp), and TensorBoard itself reads
// one (tests/python/read_tensorboard.py).
#pragma once

#include "coupling/error.h"

#include <cstdint>
#include <cstdio>
#include <string>

namespace coupling {

/// One new event file in a directory. Records are buffered: flush() makes them visible to a
/// TensorBoard that is watching the directory. Not thread-safe. Use one writer per directory at a
/// time: a live TensorBoard reads the files one after another and seldom goes back to one.
class TensorBoardWriter {
 public:
  /// Creates `directory` (and its parents) if needed and a new file in it named
  /// events.out.tfevents.<unix seconds>.<hostname>.<pid>.libcoupling (".N" appended when that
  /// name is taken; a file is never overwritten), then writes the version event.
  /// Throws coupling::LogError when the directory or the file cannot be created.
  explicit TensorBoardWriter(const std::string& directory);

  /// Flushes and closes the file. A destructor cannot throw: call flush() first to see errors.
  ~TensorBoardWriter();

  TensorBoardWriter(TensorBoardWriter&& other) noexcept;
  TensorBoardWriter& operator=(TensorBoardWriter&& other) noexcept;
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  /// Appends scalar `value` (stored as a float32, as TensorBoard does) of curve `tag` at `step`;
  /// `wall_time` is in seconds since the Unix epoch. Throws coupling::LogError naming the file
  /// when the write fails (a full disk); after that every call throws, since the file may end in
  /// a partial record that TensorBoard would stop at.
  void add_scalar(const std::string& tag, int64_t step, double value, double wall_time);
  /// The same at the current time.
  void add_scalar(const std::string& tag, int64_t step, double value);

  /// A resumed run's restart at `step`: a SessionLog START event, after which TensorBoard drops
  /// the events at `step` or later that earlier files of the directory hold (the steps a run
  /// repeats after resuming from its last checkpoint).
  void restart_at(int64_t step);
  /// Writes the buffered records to the file. Throws coupling::LogError naming it on failure.
  void flush();

  /// The event file's path.
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  void fail(const std::string& what);
  void close() noexcept;

  std::string path_;
  std::FILE* file_ = nullptr;
  std::string error_;  ///< the first write failure's message; non-empty = every call throws it
};

}  // namespace coupling
