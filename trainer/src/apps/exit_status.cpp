#include "trainer/apps/exit_status.h"

#include "coupling/dist/communicator.h"
#include "coupling/error.h"

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <new>
#include <regex>
#include <string>

namespace trainer {
namespace {

std::string with_note(const coupling::Error& error, const SettingNotes& notes) {
  const auto note = notes.find(error.setting());
  return note == notes.end() ? error.what() : std::string(error.what()) + " (" + note->second + ")";
}

}  // namespace

SettingNotes measurement_notes(SettingNotes own) {
  own.insert({{"MeasurementOptions::k_grid", "flag --k"},
              {"MeasurementOptions::tokens", "flag --tokens"},
              {"MeasurementOptions::tokens.context_pairs", "flag --context-pairs"},
              {"MeasurementOptions::spectrum", "flag --spectrum"},
              {"MeasurementOptions::jacobian_path", "flag --jacobian"},
              {"MeasurementOptions::depth_band", "flag --depth-band"},
              {"MeasurementOptions::randomized", "flags --oversample and --power-iterations"}});
  return own;
}

int report_failure(const char* out_of_memory_hint, const SettingNotes& notes) {
  try {
    throw;
  } catch (const coupling::CommunicationError& e) {
    spdlog::error("{}", with_note(e, notes));
    return kCommunicationErrorExit;
  } catch (const coupling::Error& e) {
    spdlog::error("{}", with_note(e, notes));
    return kUserErrorExit;
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    static const std::regex allocation(
        "(?:can't allocate memory|out of memory).*?allocate ([0-9]+ bytes|[0-9.]+ ?[KMG]?i?B)", std::regex::icase);
    std::smatch match;
    if (std::regex_search(what, match, allocation)) {
      spdlog::error(
          "out of memory: LibTorch could not allocate {} (the machine's memory, or an address-space limit: "
          "ulimit -v); {}",
          match[1].str(), out_of_memory_hint);
    } else {
      spdlog::error("LibTorch error: {}", what);
    }
  } catch (const std::bad_alloc&) {
    spdlog::error("out of memory (the machine's memory, or an address-space limit: ulimit -v); {}", out_of_memory_hint);
  } catch (const std::exception& e) {  // a bug of ours: say what it was
    spdlog::error("unexpected error: {}", e.what());
  } catch (...) {
    spdlog::error("unexpected error of an unknown type");
  }
  return 1;
}

}  // namespace trainer
