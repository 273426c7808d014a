// Where this process sits in a data-parallel job, read from its launcher's environment, in this
// order: torchrun/torchelastic (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT), SLURM (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; master from SLURM_NODELIST
// unless MASTER_ADDR/MASTER_PORT are set), OpenMPI (OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/
// LOCAL_SIZE), else a single process. Pure: the environment is passed in, so it is testable.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace trainer {

struct DistEnv {
  std::string launcher = "single";  ///< "torchrun", "slurm", "openmpi" or "single"
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  int64_t local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  /// torchrun's agent already hosts the TCPStore at master_addr:master_port
  /// (TORCHELASTIC_USE_AGENT_STORE=True): every rank joins it as a client.
  bool launcher_hosts_store = false;
  int64_t restart_count = 0;  ///< TORCHELASTIC_RESTART_COUNT: keys of a restarted attempt are fresh

  bool distributed() const { return world_size > 1; }
  /// A job on this machine alone (MASTER_ADDR a loopback address, or unset): its rendezvous and
  /// transports then listen on loopback only (trainer::connect).
  bool single_node() const;
};

/// Whether `address` names this machine's loopback: "localhost", 127.0.0.0/8 or ::1.
bool is_loopback_address(const std::string& address);

/// Looks up one environment variable (nullopt when unset).
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// The real process environment.
EnvLookup process_environment();

/// Resolves the job layout. Throws coupling::ConfigError naming the variable when a value is not
/// an integer, a rank is outside [0, world size), or the port is outside 1..65535.
DistEnv resolve_dist_env(const EnvLookup& env = process_environment());

/// The first host of a SLURM node list: "gpu[03-05,9],cpu1" -> "gpu03". Throws ConfigError on
/// an empty or malformed list.
std::string first_slurm_host(const std::string& nodelist);

}  // namespace trainer
