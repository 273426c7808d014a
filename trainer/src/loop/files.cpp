#include "trainer/loop/files.h"

#include "coupling/error.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace trainer {

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw coupling::IoError("cannot create " + temp + ": " + std::strerror(errno));
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) {
      std::error_code ignored;
      fs::remove(temp, ignored);
      throw coupling::IoError("cannot write " + temp + " (disk full?)");
    }
  }
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
                            (ec ? ec.message() : std::string("a file with that name exists")) +
                            "; choose another " + flag);
  }
  const std::string probe = (fs::path(dir) / (".write-test-" + std::to_string(::getpid()))).string();
  {
    std::ofstream out(probe);
    if (!out) {
      throw coupling::IoError("output directory " + dir + " is not writable (" + std::strerror(errno) +
                              "); fix its permissions or choose another " + flag);
    }
  }
  fs::remove(probe, ec);
}

void truncate_csv_log(const std::string& path, long long step_limit) {
  std::ifstream in(path);
  if (!in) return;
  std::ostringstream kept;
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (header) {
      kept << line << '\n';
      header = false;
      continue;
    }
    if (!line.empty() && std::stoll(line.substr(0, line.find(','))) < step_limit) kept << line << '\n';
  }
  write_file_atomic(path, kept.str());
}

}  // namespace trainer
