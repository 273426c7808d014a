// The rendezvous store of a job on one machine: a c10d FileStore in a private directory, so that
// nothing the job opens listens beyond loopback (c10d's TCPStore listens on every interface and
// has no option to bind one). Rank 0 publishes the store; the other ranks wait for it.
//
// Directory: $COUPLING_RENDEZVOUS_DIR, else $TMPDIR (or /tmp)/libcoupling-<uid>; it must be a
// directory (not a symlink) owned by this user with no access for others (it is created so).
// In it, for MASTER_PORT P and attempt A (torchrun's restart count):
//   port-P-attempt-A.owner             "PID START STORE": rank 0's process (PID and start time,
//                                      so a reused PID is not mistaken for it) and its store
//   port-P-attempt-A-PID-START.store   the FileStore, fresh for each job
// A rank 0 finding the owner file of a live rank 0 refuses (the port is taken, as with TCP). Files
// of dead jobs are removed by the next rank 0.
#pragma once

#include "trainer/parallel/env.h"

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <string>

namespace trainer {

/// The store for `env`'s rank, published by rank 0 or found within `timeout`. Throws
/// coupling::CommunicationError (rank 0 never published; the port is taken by a live job) or
/// coupling::ConfigError (the directory is not private).
c10::intrusive_ptr<c10d::Store> local_rendezvous_store(const DistEnv& env, std::chrono::milliseconds timeout);

/// Removes rank 0's owner file if it still names this process (the job is over).
void release_local_rendezvous(const DistEnv& env);

}  // namespace trainer
