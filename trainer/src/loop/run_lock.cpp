#include "trainer/loop/run_lock.h"

#include "coupling/error.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

namespace trainer {
namespace {

std::string holder_of(int fd) {
  char text[256] = {};
  const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  return n > 0 ? std::string(text, static_cast<size_t>(n)) : std::string("an unknown process");
}

std::string this_process() {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  return std::to_string(::getpid()) + "@" + host;
}

}  // namespace

RunLock RunLock::acquire(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kFileName).string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) throw coupling::IoError("cannot create the run's lock file " + path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (error == EWOULDBLOCK) {
      const std::string holder = holder_of(fd);
      ::close(fd);
      throw coupling::ConfigError("run directory " + dir + " is in use by process " + holder + " (it holds " + path +
                                  "): wait for that run to end, or choose another --out");
    }
    spdlog::warn(
        "cannot lock {} ({}): this file system has no flock, so nothing stops a second run from using "
        "{} at the same time",
        path, std::strerror(error), dir);
    return RunLock(fd);
  }
  const std::string me = this_process();
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    spdlog::warn("cannot write {} into {}: {}", me, path, std::strerror(errno));
  }
  return RunLock(fd);
}

RunLock::RunLock(RunLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the lock
}

}  // namespace trainer
