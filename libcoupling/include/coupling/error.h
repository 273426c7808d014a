// Typed exceptions thrown by libcoupling and its bundled trainers.
//
// Every message says what was wrong and what to do about it, so a command-line front end can
// print e.what() as a single line and exit non-zero. Catch coupling::Error to handle them all.
#pragma once

#include <stdexcept>
#include <string>

namespace coupling {

/// Base class of every error this project throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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

/// Training produced a non-finite value; the run stopped without saving it.
class DivergenceError : public Error {
 public:
  using Error::Error;
};

}  // namespace coupling
