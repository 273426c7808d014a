"""pytest for the Python package (tests/python/test_*.py): python/ on sys.path (coupling_path), and
coupling-train for the tests that ask it for measurement schedules.

COUPLING_TRAIN: the coupling-train binary (ctest passes the build's); without it the tests use
build/bin/coupling-train of the checkout and skip what needs it when that is absent or predates
--print-schedule. With COUPLING_TRAIN set, a binary without --print-schedule fails those tests.
"""
import os
import subprocess

import pytest

import coupling_path  # noqa: F401  (python/ on sys.path)


@pytest.fixture(scope="session")
def coupling_train():
    """The path of a coupling-train that has --print-schedule."""
    given = os.environ.get("COUPLING_TRAIN")
    path = given or os.path.join(coupling_path.REPOSITORY, "build", "bin", "coupling-train")
    if not os.access(path, os.X_OK):
        if given:
            pytest.fail(f"COUPLING_TRAIN={given} is not an executable file")
        pytest.skip(f"no coupling-train at {path} (build it, or set COUPLING_TRAIN)")
    p = subprocess.run([path, "--print-schedule", "every:1", "--steps", "1"], capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0 or p.stdout.split() != ["0", "1"]:
        message = f"{path} --print-schedule every:1 --steps 1: exit {p.returncode}, {p.stdout!r} {p.stderr.strip()!r}"
        if given:
            pytest.fail(message)
        pytest.skip(f"{message} (a build before --print-schedule?)")
    return path
