// Job-environment resolution: torchrun, SLURM (node-list parsing, MASTER_* override), OpenMPI,
// single process, precedence, and malformed values.
#include "coupling/error.h"
#include "trainer/parallel/env.h"

#include <gtest/gtest.h>

#include <map>

namespace {

trainer::EnvLookup fake(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

TEST(DistEnv, SingleProcessByDefault) {
  const auto e = trainer::resolve_dist_env(fake({}));
  EXPECT_EQ(e.launcher, "single");
  EXPECT_FALSE(e.distributed());
  EXPECT_EQ(e.master_addr, "127.0.0.1");
  EXPECT_EQ(e.master_port, 29500);
}

TEST(DistEnv, Torchrun) {
  const auto e = trainer::resolve_dist_env(fake({{"RANK", "3"},
                                                 {"WORLD_SIZE", "4"},
                                                 {"LOCAL_RANK", "1"},
                                                 {"LOCAL_WORLD_SIZE", "2"},
                                                 {"MASTER_ADDR", "node7"},
                                                 {"MASTER_PORT", "29600"}}));
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 2);
  EXPECT_EQ(e.master_addr, "node7");
  EXPECT_EQ(e.master_port, 29600);
  EXPECT_TRUE(e.distributed());
  EXPECT_FALSE(e.launcher_hosts_store);
}

TEST(DistEnv, TorchrunAgentHostsTheStore) {
  const auto e = trainer::resolve_dist_env(fake({{"RANK", "0"},
                                                 {"WORLD_SIZE", "2"},
                                                 {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                                 {"TORCHELASTIC_RESTART_COUNT", "2"}}));
  EXPECT_TRUE(e.launcher_hosts_store);
  EXPECT_EQ(e.restart_count, 2);
  const auto own =
      trainer::resolve_dist_env(fake({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"TORCHELASTIC_USE_AGENT_STORE", "False"}}));
  EXPECT_FALSE(own.launcher_hosts_store);
}

TEST(DistEnv, SlurmTakesTheMasterFromTheNodeListUnlessOverridden) {
  std::map<std::string, std::string> vars = {{"SLURM_PROCID", "5"},
                                             {"SLURM_NTASKS", "8"},
                                             {"SLURM_LOCALID", "1"},
                                             {"SLURM_TASKS_PER_NODE", "4(x2)"},
                                             {"SLURM_NODELIST", "gpu[03-04]"}};
  auto e = trainer::resolve_dist_env(fake(vars));
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_world_size, 4);
  EXPECT_EQ(e.master_addr, "gpu03");
  vars["MASTER_ADDR"] = "head";
  vars["MASTER_PORT"] = "1234";
  e = trainer::resolve_dist_env(fake(vars));
  EXPECT_EQ(e.master_addr, "head");
  EXPECT_EQ(e.master_port, 1234);
}

TEST(DistEnv, OpenMpiAndPrecedence) {
  const auto e = trainer::resolve_dist_env(fake({{"OMPI_COMM_WORLD_RANK", "1"},
                                                 {"OMPI_COMM_WORLD_SIZE", "2"},
                                                 {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                                 {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
  EXPECT_EQ(e.launcher, "openmpi");
  EXPECT_EQ(e.rank, 1);
  // torchrun's variables win over SLURM's (torchrun inside an allocation).
  const auto both = trainer::resolve_dist_env(
      fake({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}}));
  EXPECT_EQ(both.launcher, "torchrun");
  EXPECT_EQ(both.world_size, 2);
}

TEST(DistEnv, SlurmNodeLists) {
  EXPECT_EQ(trainer::first_slurm_host("node1"), "node1");
  EXPECT_EQ(trainer::first_slurm_host("node1,node2"), "node1");
  EXPECT_EQ(trainer::first_slurm_host("gpu[003-005,9],cpu1"), "gpu003");
  EXPECT_EQ(trainer::first_slurm_host("a[7,2]"), "a7");
  EXPECT_THROW(trainer::first_slurm_host(""), coupling::ConfigError);
  EXPECT_THROW(trainer::first_slurm_host("gpu[01-02"), coupling::ConfigError);
}

TEST(DistEnv, MalformedValuesNameTheVariable) {
  auto expect_error = [](std::map<std::string, std::string> vars, const std::string& fragment) {
    try {
      trainer::resolve_dist_env(fake(vars));
      ADD_FAILURE() << "accepted: " << fragment;
    } catch (const coupling::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error({{"RANK", "one"}, {"WORLD_SIZE", "2"}}, "RANK='one' is not an integer");
  expect_error({{"RANK", "2"}, {"WORLD_SIZE", "2"}}, "RANK=2 is outside [0, WORLD_SIZE=2)");
  expect_error({{"MASTER_PORT", "70000"}}, "MASTER_PORT=70000");
  expect_error({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "0"}}, "SLURM_NTASKS must be >= 1");
}

TEST(DistEnv, SingleNodeMeansALoopbackMaster) {
  for (const char* address : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"}) {
    EXPECT_TRUE(trainer::is_loopback_address(address)) << address;
  }
  for (const char* address : {"10.0.0.1", "128.0.0.1", "0.0.0.0", "node07", "127.0.0.1.example.com", "::", ""}) {
    EXPECT_FALSE(trainer::is_loopback_address(address)) << address;
  }
  EXPECT_TRUE(trainer::resolve_dist_env(fake({{"WORLD_SIZE", "2"}, {"RANK", "1"}})).single_node());
  EXPECT_FALSE(
      trainer::resolve_dist_env(fake({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "node07"}})).single_node());
}

}  // namespace
