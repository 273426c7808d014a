"""Puts the package python/ (import name `coupling`) first on sys.path: the one place the tests and their
helpers (compare_logs.py, check_log.py, ... run by tests/cli/*.sh) reach it, so they test the checkout
even where an older copy is installed. `import coupling_path` from a script in tests/python."""
import os
import sys

PYTHON = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
REPOSITORY = os.path.dirname(PYTHON)
if PYTHON not in sys.path:
    sys.path.insert(0, PYTHON)
