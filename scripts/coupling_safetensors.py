#!/usr/bin/python3
"""`coupling-safetensors` (python/coupling/safetensors.py) under its old name: scripts/coupling_package.py."""
import coupling_package
from coupling.safetensors import *  # noqa: E402,F401,F403

if __name__ == "__main__":
    coupling_package.run("coupling.safetensors")
