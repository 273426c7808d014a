#include "coupling/version.h"

namespace coupling {

std::string version() { return COUPLING_VERSION_STRING; }

}  // namespace coupling
