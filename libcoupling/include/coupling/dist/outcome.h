// Ending a stage that may fail on some ranks only (a measurement, setup, file checks) without
// leaving the others waiting in a later collective: one small all-gather of every rank's outcome.
#pragma once

#include <exception>
#include <string>

namespace coupling {

class Communicator;

/// Every rank calls this with its own failure (or nullptr). A rank that failed rethrows its own
/// exception; the others throw, naming the ranks that failed in `stage`: coupling::ConfigError
/// when every failure was the user's input or files (a coupling::Error other than a
/// CommunicationError), so that all ranks exit as for bad input, else CommunicationError. A null
/// communicator (one process) just rethrows a local failure.
void rethrow_if_any_rank_failed(const std::exception_ptr& local_failure, const std::string& stage,
                                Communicator* communicator);

}  // namespace coupling
