// Crash-safe file helpers: atomic writes (temp file + rename) and an early writability check,
// so a run never leaves a half-written file behind and fails before doing any work when its
// output directory cannot be written.
#pragma once

#include <string>
#include <vector>

namespace trainer {

/// Writes `contents` to `path` through a temporary file in the same directory and a rename.
/// Throws coupling::IoError naming the path.
void write_file_atomic(const std::string& path, const std::string& contents);

/// Creates `dir` (and parents) if needed and checks that a file can be created in it.
/// Throws coupling::IoError naming the directory and the flag (`flag`) to change.
void ensure_writable_directory(const std::string& dir, const std::string& flag = "--out");

/// The directories that creating `dir` would make: `dir` and its missing parents, deepest first
/// (empty when `dir` exists).
std::vector<std::string> missing_directories(const std::string& dir);

/// Removes those of `dirs` (deepest first, as missing_directories gives them) that are empty:
/// what a refused run created is taken away again. Never removes a file.
void remove_empty_directories(const std::vector<std::string>& dirs);

/// Keeps only the lines of a CSV log (after its header) whose first field, an integer step, is
/// below `step_limit`; atomic. Does nothing if the file does not exist. Used on resume so the
/// logs continue exactly where the checkpoint left off.
void truncate_csv_log(const std::string& path, long long step_limit);

}  // namespace trainer
