#include "coupling/version.h"

namespace coupling {

std::string version() { return COUPLING_VERSION_STRING; }

std::string git_revision() { return COUPLING_GIT_REVISION; }

}  // namespace coupling
