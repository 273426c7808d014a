#include "trainer/apps/exit_status.h"

#include "coupling/dist/communicator.h"
#include "coupling/error.h"

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <new>

namespace trainer {

int report_failure(const char* out_of_memory_hint) {
  try {
    throw;
  } catch (const coupling::CommunicationError& e) {
    spdlog::error("{}", e.what());
    return kCommunicationErrorExit;
  } catch (const coupling::Error& e) {
    spdlog::error("{}", e.what());
    return kUserErrorExit;
  } catch (const c10::Error& e) {
    spdlog::error("LibTorch error: {}", e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    spdlog::error("out of memory: {}", out_of_memory_hint);
  } catch (const std::exception& e) {  // a bug of ours: say what it was
    spdlog::error("unexpected error: {}", e.what());
  } catch (...) {
    spdlog::error("unexpected error of an unknown type");
  }
  return 1;
}

}  // namespace trainer
