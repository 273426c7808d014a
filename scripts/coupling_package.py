"""Puts the Python package `coupling` on sys.path for the wrapper scripts of scripts/ (plot_coupling.py,
coupling_log.py, ...), which keep the old names for a Python without the package installed, such as Debian's
/usr/bin/python3 (PEP 668). Finds it in the checkout (python/) or, installed by `cmake --install` beside the
wrappers in PREFIX/bin, in PREFIX/share/coupling/python. A wrapper is `from coupling.MODULE import *` after
`import coupling_package`, so that `import WRAPPER` with scripts/ on sys.path gives the module's names, and
`coupling_package.run("coupling.MODULE")` as a script: the same flags, output and exit status.
"""
import importlib
import os
import sys

_here = os.path.dirname(os.path.realpath(__file__))
for _root in (os.path.join(_here, "..", "python"), os.path.join(_here, "..", "share", "coupling", "python")):
    if os.path.isfile(os.path.join(_root, "coupling", "__init__.py")):
        sys.path.insert(0, os.path.abspath(_root))
        break


def run(module):
    """Runs the package module's main() and exits with its status."""
    sys.exit(importlib.import_module(module).main())
