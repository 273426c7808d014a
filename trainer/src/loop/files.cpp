#include "trainer/loop/files.h"

#include "coupling/error.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>

namespace fs = std::filesystem;

namespace trainer {

namespace {

/// Creates a fresh file `path` + a random suffix, with O_CREAT|O_EXCL|O_NOFOLLOW: a file or
/// symlink planted under that name is never followed or reused. Mode 0666 less the umask, as
/// for any file the run writes. Returns its name and descriptor.
std::pair<std::string, int> make_temporary(const std::string& path) {
  std::random_device random;
  for (int attempt = 0; attempt < 16; ++attempt) {
    const std::string name = fmt::format("{}.tmp-{:08x}{:08x}", path, random(), random());
    const int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd >= 0) return {name, fd};
    if (errno != EEXIST) throw coupling::IoError("cannot create " + name + ": " + std::strerror(errno));
  }
  throw coupling::IoError("cannot create a temporary file next to " + path + ": every name was taken");
}

/// Writes all of `contents` to `fd`, or says why not (a full disk is ENOSPC).
void write_all(int fd, const std::string& contents, const std::string& name) {
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw coupling::IoError("cannot write " + name + ": " + std::strerror(n < 0 ? errno : ENOSPC));
    done += static_cast<size_t>(n);
  }
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& contents) {
  const auto [temp, fd] = make_temporary(path);
  try {
    write_all(fd, contents, temp);
    if (::fsync(fd) != 0) throw coupling::IoError("cannot write " + temp + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  ::close(fd);
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    fs::remove(temp, ec);
    throw coupling::IoError("cannot rename " + temp + " to " + path + ": " + ec.message());
  }
}

void ensure_writable_directory(const std::string& dir, const std::string& flag) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw coupling::IoError("cannot create output directory " + dir + ": " +
                            (ec ? ec.message() : std::string("a file with that name exists")) + "; choose another " +
                            flag);
  }
  try {
    const auto [probe, fd] = make_temporary((fs::path(dir) / ".write-test").string());
    ::close(fd);
    ::unlink(probe.c_str());
  } catch (const coupling::IoError&) {
    throw coupling::IoError("output directory " + dir + " is not writable (" + std::strerror(errno) +
                            "); fix its permissions or choose another " + flag);
  }
}

std::vector<std::string> missing_directories(const std::string& dir) {
  std::vector<std::string> missing;
  std::error_code ec;
  for (fs::path p = fs::absolute(dir).lexically_normal(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p.string());
    if (p == p.parent_path()) break;
  }
  return missing;
}

void remove_empty_directories(const std::vector<std::string>& dirs) {
  std::error_code ec;
  for (const auto& dir : dirs) {
    if (fs::is_directory(dir, ec) && fs::is_empty(dir, ec)) fs::remove(dir, ec);
  }
}

void truncate_csv_log(const std::string& path, long long step_limit) {
  std::ifstream in(path);
  if (!in) return;
  std::ostringstream kept;
  std::string line;
  bool header = true;
  long long row = 0;
  while (std::getline(in, line)) {
    if (header) {
      kept << line << '\n';
      header = false;
      continue;
    }
    if (line.empty()) continue;
    long long step = 0;
    try {
      size_t used = 0;
      const std::string first = line.substr(0, line.find(','));
      step = std::stoll(first, &used);
      if (used != first.size()) throw std::invalid_argument(first);
    } catch (const std::exception&) {
      throw coupling::CheckpointError(path + " line " + std::to_string(row + 2) + " does not start with a step (" +
                                      line.substr(0, 40) + "): repair or remove the line, then resume");
    }
    ++row;
    if (step < step_limit) kept << line << '\n';
  }
  write_file_atomic(path, kept.str());
}

}  // namespace trainer
