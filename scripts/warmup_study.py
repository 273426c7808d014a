#!/usr/bin/python3
"""`coupling-warmup-study` (python/coupling/warmup_study.py) for a Python without the package: scripts/coupling_package.py."""
import coupling_package
from coupling.warmup_study import *  # noqa: E402,F401,F403

if __name__ == "__main__":
    coupling_package.run("coupling.warmup_study")
