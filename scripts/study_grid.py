#!/usr/bin/python3
"""`coupling-study-grid` (python/coupling/study_grid.py) under its old name: scripts/coupling_package.py."""
import coupling_package
from coupling.study_grid import *  # noqa: E402,F401,F403

if __name__ == "__main__":
    coupling_package.run("coupling.study_grid")
