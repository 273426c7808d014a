// Typed exceptions thrown by libcoupling (the bundled trainers add trainer::DivergenceError).
//
// Every message says what was wrong and what to do about it, in the library's own terms, so a
// front end can print e.what() as a single line and exit non-zero. Where the remedy is to change
// one setting, setting() names it as the library does ("MeasurementOptions::max_row_bytes"); a
// front end may translate it into its own flag. Catch coupling::Error to handle them all.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace coupling {

/// Base class of every error this project throws on purpose.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, std::string setting = {})
      : std::runtime_error(what), setting_(std::move(setting)) {}

  /// The setting to change, as the library names it ("Struct::member"), or empty.
  const std::string& setting() const { return setting_; }

 private:
  std::string setting_;
};

/// An option or configuration value is invalid or inconsistent.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// Input data is missing, unreadable, malformed or too small.
class DataError : public Error {
 public:
  using Error::Error;
};

/// A file or directory could not be created, written or renamed.
class IoError : public Error {
 public:
  using Error::Error;
};

/// A checkpoint is missing, corrupt or incompatible with the requested run.
class CheckpointError : public Error {
 public:
  using Error::Error;
};

/// A file is not a libcoupling log, is corrupt, has a newer schema, or belongs to another run.
class LogError : public Error {
 public:
  using Error::Error;
};

}  // namespace coupling
