#include "coupling/dist/outcome.h"

#include "coupling/dist/communicator.h"
#include "coupling/error.h"

#include <ATen/ATen.h>

namespace coupling {

void rethrow_if_any_rank_failed(const std::exception_ptr& local_failure, const std::string& stage,
                                Communicator* communicator) {
  if (!communicator) {
    if (local_failure) std::rethrow_exception(local_failure);
    return;
  }
  // 0: no failure; 1: the user's input (a coupling::Error other than a communication one); 2: else.
  int64_t outcome = 0;
  if (local_failure) {
    try {
      std::rethrow_exception(local_failure);
    } catch (const CommunicationError&) {
      outcome = 2;
    } catch (const Error&) {
      outcome = 1;
    } catch (...) {
      outcome = 2;
    }
  }
  const auto outcomes = communicator->all_gather(at::full({1}, outcome, at::kLong), "the outcome of " + stage);
  if (local_failure) std::rethrow_exception(local_failure);
  std::string ranks;
  bool input_only = true;
  for (size_t r = 0; r < outcomes.size(); ++r) {
    const int64_t other = outcomes[r].item<int64_t>();
    if (other != 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (other == 2) input_only = false;
  }
  if (ranks.empty()) return;
  if (input_only) {  // the same bad input on every rank is the usual case: exit as they do
    throw ConfigError("rank(s) " + ranks + " stopped on an error of the input or files during " + stage +
                      "; this rank stops too: see the failing rank's message");
  }
  throw CommunicationError("rank(s) " + ranks + " failed during " + stage +
                           "; this rank stops too: see the failing rank's message");
}

}  // namespace coupling
