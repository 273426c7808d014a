#!/usr/bin/python3
"""`coupling-plot` (python/coupling/plot.py) under its old name: scripts/coupling_package.py."""
import coupling_package
from coupling.plot import *  # noqa: E402,F401,F403

if __name__ == "__main__":
    coupling_package.run("coupling.plot")
