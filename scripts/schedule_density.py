#!/usr/bin/python3
"""`coupling-schedule-density` (python/coupling/schedule_density.py) under its old name: scripts/coupling_package.py."""
import coupling_package
from coupling.schedule_density import *  # noqa: E402,F401,F403

if __name__ == "__main__":
    coupling_package.run("coupling.schedule_density")
