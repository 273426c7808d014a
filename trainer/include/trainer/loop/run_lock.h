// One run per directory: an exclusive lock on the run directory for the life of the run, so two
// trainers on one --out (or a --resume of a run that is still going) cannot mix checkpoints.
// flock(2) on OUT/.coupling-train.lock, opened O_CLOEXEC by the rank that writes the run's
// files; the file holds "pid@host" because flock cannot name its holder. The kernel releases
// the lock when the process ends, however it ends. Where the file system has no flock (some
// cluster file systems), a warning and no lock.
#pragma once

#include <string>

namespace trainer {

class RunLock {
 public:
  static constexpr const char* kFileName = ".coupling-train.lock";  ///< inside the locked directory

  /// Locks `dir` (which must exist). Throws coupling::ConfigError naming the holder when
  /// another process holds it, coupling::IoError when the lock file cannot be made.
  static RunLock acquire(const std::string& dir);

  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();

 private:
  explicit RunLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace trainer
