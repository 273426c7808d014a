#!/usr/bin/python3
"""`coupling-log` (python/coupling/log.py) under its old name: scripts/coupling_package.py."""
import coupling_package
from coupling.log import *  # noqa: E402,F401,F403

if __name__ == "__main__":
    coupling_package.run("coupling.log")
