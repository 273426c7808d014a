// The libcoupling version, for logs and for the metadata stored with every run.
#pragma once

#include <string>

namespace coupling {

/// Semantic version of this build of libcoupling, e.g. "0.1.0".
std::string version();

/// Short git revision of the source tree at configure time, or "unknown".
std::string git_revision();

}  // namespace coupling
