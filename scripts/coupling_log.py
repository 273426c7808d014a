#!/usr/bin/python3
"""scripts/coupling_log.py: `coupling-log` (python/coupling/log.py) for a Python without the package installed,
such as Debian's /usr/bin/python3 (PEP 668): same flags, output and exit status; `import coupling_log` with
scripts/ on sys.path gives the module's names as before. Finds the package in the checkout (python/) or,
installed by `cmake --install`, in PREFIX/share/coupling/python.
"""
import os
import sys

_here = os.path.dirname(os.path.realpath(__file__))
for _root in (os.path.join(_here, "..", "python"), os.path.join(_here, "..", "share", "coupling", "python")):
    if os.path.isfile(os.path.join(_root, "coupling", "__init__.py")):
        sys.path.insert(0, os.path.abspath(_root))
        break

from coupling.log import *  # noqa: E402,F401,F403
from coupling.log import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
