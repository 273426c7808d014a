#include "trainer/parallel/env.h"

#include "coupling/error.h"

#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <cstdlib>

namespace trainer {
namespace {

using coupling::ConfigError;

int64_t parse_integer(const std::string& name, const std::string& value) {
  int64_t parsed = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (error == std::errc() && end == value.data() + value.size() && !value.empty()) return parsed;
  throw ConfigError("environment variable " + name + "='" + value + "' is not an integer");
}

int64_t integer_or(const EnvLookup& env, const std::string& name, int64_t fallback) {
  const auto value = env(name);
  return value ? parse_integer(name, *value) : fallback;
}

/// "2(x3),1" -> 2: the tasks on the first node of a SLURM_TASKS_PER_NODE value.
int64_t leading_count(const std::string& name, const std::string& value) {
  size_t end = 0;
  while (end < value.size() && std::isdigit(static_cast<unsigned char>(value[end]))) ++end;
  return parse_integer(name, value.substr(0, end));
}

void validate(const DistEnv& e, const std::string& rank_name, const std::string& world_name) {
  if (e.world_size < 1) throw ConfigError(world_name + " must be >= 1 (got " + std::to_string(e.world_size) + ")");
  if (e.rank < 0 || e.rank >= e.world_size) {
    throw ConfigError(rank_name + "=" + std::to_string(e.rank) + " is outside [0, " + world_name + "=" +
                      std::to_string(e.world_size) + ")");
  }
  if (e.local_rank < 0 || e.local_rank >= e.local_world_size) {
    throw ConfigError("local rank " + std::to_string(e.local_rank) + " is outside [0, local world size " +
                      std::to_string(e.local_world_size) + ")");
  }
  if (e.master_port < 1 || e.master_port > 65535) {
    throw ConfigError("MASTER_PORT=" + std::to_string(e.master_port) + " is not a TCP port (1..65535)");
  }
}

/// The variable names of a launcher that sets rank, world size and their local counterparts.
struct LauncherVariables {
  const char* launcher;
  const char* rank;
  const char* world_size;
  const char* local_rank;
  const char* local_world_size;
};

/// Ranks from a launcher's variables; local values default to the global ones (one node).
DistEnv read_ranks(const EnvLookup& env, const LauncherVariables& v) {
  DistEnv e;
  e.launcher = v.launcher;
  e.rank = integer_or(env, v.rank, 0);
  e.world_size = integer_or(env, v.world_size, 1);
  e.local_rank = integer_or(env, v.local_rank, e.rank);
  e.local_world_size = integer_or(env, v.local_world_size, e.world_size);
  validate(e, v.rank, v.world_size);
  return e;
}

}  // namespace

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    return value ? std::optional<std::string>(value) : std::nullopt;
  };
}

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at the first comma outside brackets.
  size_t end = 0;
  int depth = 0;
  for (; end < nodelist.size(); ++end) {
    if (nodelist[end] == '[') ++depth;
    if (nodelist[end] == ']') --depth;
    if (nodelist[end] == ',' && depth == 0) break;
  }
  const std::string entry = nodelist.substr(0, end);
  const auto open = entry.find('[');
  if (entry.empty() || (open != std::string::npos && entry.back() != ']')) {
    throw ConfigError("cannot read the first host of SLURM_NODELIST='" + nodelist + "': set MASTER_ADDR");
  }
  if (open == std::string::npos) return entry;
  // prefix[03-05,9] -> prefix + "03" (the first number of the first range, zero padding kept).
  const std::string inside = entry.substr(open + 1, entry.size() - open - 2);
  const std::string first = inside.substr(0, inside.find_first_of("-,"));
  if (first.empty())
    throw ConfigError("cannot read the first host of SLURM_NODELIST='" + nodelist + "': set MASTER_ADDR");
  return entry.substr(0, open) + first;
}

DistEnv resolve_dist_env(const EnvLookup& env) {
  DistEnv e;
  if (env("RANK") && env("WORLD_SIZE")) {
    e = read_ranks(env, {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"});
    e.launcher_hosts_store = env("TORCHELASTIC_USE_AGENT_STORE") == std::optional<std::string>("True");
    e.restart_count = integer_or(env, "TORCHELASTIC_RESTART_COUNT", 0);
  } else if (env("SLURM_PROCID") && env("SLURM_NTASKS")) {
    e.launcher = "slurm";
    e.rank = integer_or(env, "SLURM_PROCID", 0);
    e.world_size = integer_or(env, "SLURM_NTASKS", 1);
    e.local_rank = integer_or(env, "SLURM_LOCALID", 0);
    const auto per_node = env("SLURM_TASKS_PER_NODE");
    e.local_world_size = per_node ? leading_count("SLURM_TASKS_PER_NODE", *per_node) : e.world_size;
    if (!env("MASTER_ADDR")) {
      const auto nodes = env("SLURM_NODELIST") ? env("SLURM_NODELIST") : env("SLURM_JOB_NODELIST");
      if (nodes) e.master_addr = first_slurm_host(*nodes);
    }
    validate(e, "SLURM_PROCID", "SLURM_NTASKS");
  } else if (env("OMPI_COMM_WORLD_RANK") && env("OMPI_COMM_WORLD_SIZE")) {
    e = read_ranks(env, {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                         "OMPI_COMM_WORLD_LOCAL_SIZE"});
  }
  if (const auto addr = env("MASTER_ADDR")) e.master_addr = *addr;
  e.master_port = integer_or(env, "MASTER_PORT", e.master_port);
  validate(e, "rank", "world size");
  return e;
}

bool is_loopback_address(const std::string& address) {
  if (address == "localhost" || address == "::1" || address == "[::1]") return true;
  in_addr ipv4{};
  return ::inet_pton(AF_INET, address.c_str(), &ipv4) == 1 && (ntohl(ipv4.s_addr) >> 24) == 127;
}

bool DistEnv::single_node() const { return is_loopback_address(master_addr); }

}  // namespace trainer
