// Whole reads and writes at a file offset (pread/pwrite until done, retrying EINTR): the safetensors
// reader and the engine's Jacobian spill file share them.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace coupling::detail {

/// Reads up to `count` bytes at `offset` into `into`; returns how many it read (fewer only at the
/// end of the file), or -1 with errno set.
inline int64_t pread_fully(int fd, void* into, uint64_t count, uint64_t offset) {
  uint64_t done = 0;
  while (done < count) {
    const ssize_t got = ::pread(fd, static_cast<char*>(into) + done, count - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return -1;
    if (got == 0) break;
    done += static_cast<uint64_t>(got);
  }
  return static_cast<int64_t>(done);
}

/// Writes `count` bytes of `from` at `offset`; returns false with errno set (0 when the file took
/// no more bytes) on failure.
inline bool pwrite_fully(int fd, const void* from, uint64_t count, uint64_t offset) {
  uint64_t done = 0;
  while (done < count) {
    const ssize_t wrote =
        ::pwrite(fd, static_cast<const char*>(from) + done, count - done, static_cast<off_t>(offset + done));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) {
      if (wrote == 0) errno = 0;
      return false;
    }
    done += static_cast<uint64_t>(wrote);
  }
  return true;
}

}  // namespace coupling::detail
