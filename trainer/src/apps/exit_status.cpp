#include "trainer/apps/exit_status.h"

#include "coupling/dist/communicator.h"
#include "coupling/error.h"

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <map>
#include <new>
#include <string>

namespace trainer {
namespace {

/// The library's settings (coupling::Error::setting) as the tools' flags.
std::string with_flag(const coupling::Error& error) {
  static const std::map<std::string, std::string> flags = {
      {"MeasurementOptions::max_row_bytes", "--max-row-mib"},
      {"MeasurementOptions::k_grid", "--k"},
      {"LogMetadata::seed", "--seed"},
      {"LogMetadata::data_sha256", "--data"},
      {"TensorBoardCallback::directory", "--tensorboard"},
  };
  const auto flag = flags.find(error.setting());
  return flag == flags.end() ? error.what() : std::string(error.what()) + " (flag " + flag->second + ")";
}

}  // namespace

int report_failure(const char* out_of_memory_hint) {
  try {
    throw;
  } catch (const coupling::CommunicationError& e) {
    spdlog::error("{}", with_flag(e));
    return kCommunicationErrorExit;
  } catch (const coupling::Error& e) {
    spdlog::error("{}", with_flag(e));
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
