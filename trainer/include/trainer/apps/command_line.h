// What every command-line tool shares (coupling-train, coupling-analyze, coupling-bench,
// coupling-dist-bench, measure_gpt): --version, validators for the flags that take one of a fixed
// set of values (so --help lists them and anything else is refused), and a bad command line said
// in one line with exit status 2.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

namespace trainer {

/// "libcoupling 0.1.0 (git 1a2b3c4d5e6f), LibTorch 1.13.0".
std::string version_text();

/// Call once every option is added: --version on `app`, and on every option of `app` and its
/// subcommands that takes a choice (--spectrum, --precision, --backend, --augment, --device) the
/// list of its values.
void add_standard_flags(CLI::App& app);

/// Parses the command line. Returns the exit status when the tool must stop now: 0 after --help
/// or --version (printed), 2 after a bad command line (one line naming the flag, and --help).
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

}  // namespace trainer
