#include "parallel/local_rendezvous.h"

#include "coupling/dist/communicator.h"
#include "coupling/error.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

namespace trainer {
namespace {

namespace fs = std::filesystem;
using coupling::CommunicationError;
using coupling::ConfigError;
using coupling::IoError;

/// A process by PID and start time (clock ticks after boot), so a reused PID is not taken for it.
struct ProcessId {
  std::string pid;
  std::string start;
  bool operator==(const ProcessId& other) const { return pid == other.pid && start == other.start; }
};

/// The start time of process `pid` (/proc/PID/stat field 22), or "" if there is none.
std::string start_time(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto name_end = stat.rfind(')');
  if (name_end == std::string::npos) return "";
  std::istringstream fields(stat.substr(name_end + 1));
  std::string field;
  for (int index = 3; index <= 22; ++index) {  // fields 3.. follow the parenthesised name
    if (!(fields >> field)) return "";
  }
  return field;
}

ProcessId this_process() {
  const std::string pid = std::to_string(::getpid());
  return {pid, start_time(pid)};
}

bool alive(const ProcessId& process) { return !process.start.empty() && start_time(process.pid) == process.start; }

struct Owner {
  ProcessId process;
  std::string store;  ///< file name of the store in the rendezvous directory
};

std::optional<Owner> read_owner(const fs::path& path) {
  std::ifstream in(path);
  Owner owner;
  if (!(in >> owner.process.pid >> owner.process.start >> owner.store)) return std::nullopt;
  static const std::regex store_name(R"(port-[0-9]+-attempt-[0-9]+-[0-9]+-[0-9]+\.store)");
  if (!std::regex_match(owner.store, store_name)) return std::nullopt;
  return owner;
}

/// The private directory of this user's rendezvous files, created if missing.
fs::path rendezvous_directory() {
  const char* chosen = std::getenv("COUPLING_RENDEZVOUS_DIR");
  const char* temp = std::getenv("TMPDIR");
  const fs::path dir =
      chosen != nullptr && *chosen != '\0'
          ? fs::path(chosen)
          : fs::path(temp != nullptr && *temp != '\0' ? temp : "/tmp") / ("libcoupling-" + std::to_string(::geteuid()));
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    throw ConfigError("cannot create the rendezvous directory " + dir.string() + ": " + std::strerror(errno) +
                      " (set COUPLING_RENDEZVOUS_DIR to a private directory)");
  }
  struct stat info {};
  if (::lstat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) || info.st_uid != ::geteuid() ||
      (info.st_mode & 077) != 0) {
    throw ConfigError("the rendezvous directory " + dir.string() +
                      " is not private (it must be a directory of this user, not a symlink, with no access for "
                      "others): remove it, or set COUPLING_RENDEZVOUS_DIR to a private directory");
  }
  return dir;
}

/// Removes the owner and store files of jobs whose rank 0 has ended.
void remove_stale(const fs::path& dir) {
  static const std::regex store_name(R"(port-[0-9]+-attempt-[0-9]+-([0-9]+)-([0-9]+)\.store)");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    std::smatch match;
    if (std::regex_match(name, match, store_name)) {
      if (!alive({match[1].str(), match[2].str()})) fs::remove(entry.path(), ec);
    } else if (entry.path().extension() == ".owner") {
      const auto owner = read_owner(entry.path());
      if (!owner || !alive(owner->process)) fs::remove(entry.path(), ec);
    }
  }
}

std::string base_name(const DistEnv& env) {
  return "port-" + std::to_string(env.master_port) + "-attempt-" + std::to_string(env.restart_count);
}

/// Writes `text` to `path` whole and only if `path` does not exist (a hard link from a temporary
/// name in the same private directory): of two rank 0s starting at once, one publishes.
/// Returns false if `path` exists.
bool publish_exclusive(const fs::path& path, const std::string& text) {
  const fs::path temp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::trunc);
    out << text << '\n';
    if (!out.flush()) throw IoError("cannot write " + temp.string());
  }
  const bool published = ::link(temp.c_str(), path.c_str()) == 0;
  const int error = errno;
  std::error_code ec;
  fs::remove(temp, ec);
  if (!published && error != EEXIST) throw IoError("cannot publish " + path.string() + ": " + std::strerror(error));
  return published;
}

}  // namespace

c10::intrusive_ptr<c10d::Store> local_rendezvous_store(const DistEnv& env, std::chrono::milliseconds timeout) {
  const fs::path dir = rendezvous_directory();
  const fs::path owner_path = dir / (base_name(env) + ".owner");
  const auto world = static_cast<int>(env.world_size);
  if (env.rank == 0) {
    remove_stale(dir);
    const ProcessId me = this_process();
    const std::string store = base_name(env) + "-" + me.pid + "-" + me.start + ".store";
    if (const auto owner = read_owner(owner_path); owner && owner->process == me) {
      std::error_code ec;
      fs::remove(owner_path, ec);  // this process's earlier job (a second connect)
    }
    if (!publish_exclusive(owner_path, me.pid + " " + me.start + " " + store)) {
      const auto owner = read_owner(owner_path);
      throw CommunicationError("MASTER_PORT " + std::to_string(env.master_port) +
                               " is in use by another job on this machine (its rank 0 is process " +
                               (owner ? owner->process.pid : std::string("unknown")) +
                               "): export another MASTER_PORT for this job");
    }
    auto file_store = c10::make_intrusive<c10d::FileStore>((dir / store).string(), world);
    file_store->setTimeout(timeout);
    return file_store;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (const auto owner = read_owner(owner_path); owner && alive(owner->process)) {
      auto file_store = c10::make_intrusive<c10d::FileStore>((dir / owner->store).string(), world);
      file_store->setTimeout(timeout);
      return file_store;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw CommunicationError("rank 0 of this job did not open its rendezvous (" + owner_path.string() + ") within " +
                               std::to_string(timeout.count() / 1000) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void release_local_rendezvous(const DistEnv& env) {
  try {
    const fs::path owner_path = rendezvous_directory() / (base_name(env) + ".owner");
    if (const auto owner = read_owner(owner_path); owner && owner->process == this_process()) {
      std::error_code ec;
      fs::remove(owner_path, ec);
    }
  } catch (const std::exception&) {
    // Nothing to release: the directory is gone or was never private.
  }
}

}  // namespace trainer
