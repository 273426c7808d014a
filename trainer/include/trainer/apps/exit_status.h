// The exit status of the command-line tools, in one place: 0 done, 2 the user's input (a
// coupling::Error, said in one line), 3 a failed collective of a data-parallel job, 1 anything
// else, reported in one line too: a tool never ends in abort().
#pragma once

#include <map>
#include <string>

namespace trainer {

/// What a tool says after a library error that names a setting (coupling::Error::setting): the
/// tool's own flag for it, e.g. {"MeasurementOptions::max_row_bytes", "flag --max-row-mib"}.
using SettingNotes = std::map<std::string, std::string>;

/// The measurement settings whose flags both tools share (--k, --tokens, --context-pairs,
/// --spectrum), plus `own`: a tool's notes for the settings only it has.
SettingNotes measurement_notes(SettingNotes own);

constexpr int kUserErrorExit = 2;
constexpr int kCommunicationErrorExit = 3;

/// Call inside a catch (...) block: logs the exception being handled in one line and returns
/// the exit status it means. `out_of_memory_hint` says what to lower when memory ran out;
/// `notes` translate the library's settings into the tool's flags.
int report_failure(const char* out_of_memory_hint, const SettingNotes& notes);

}  // namespace trainer
