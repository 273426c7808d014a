#!/usr/bin/python3
"""`coupling-minilm-study` (python/coupling/minilm_study.py) under its old name: scripts/coupling_package.py."""
import coupling_package
from coupling.minilm_study import *  # noqa: E402,F401,F403

if __name__ == "__main__":
    coupling_package.run("coupling.minilm_study")
