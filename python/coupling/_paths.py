"""Where the package runs from: the repository (python/coupling in a checkout) and coupling-train."""
import os

PACKAGE = os.path.dirname(os.path.abspath(__file__))


def repository():
    """The repository root when the package runs from its checkout (an editable install or python/ on
    sys.path), else None (an installed copy)."""
    root = os.path.dirname(os.path.dirname(PACKAGE))
    return root if os.path.isfile(os.path.join(root, "python", "pyproject.toml")) else None


class ToolNotFound(OSError):
    """coupling-train was not found; the message says where it looked and what to do."""


def coupling_train(path=None):
    """The coupling-train binary: `path`, else $COUPLING_TRAIN, else build/bin/coupling-train of the
    repository. Raises ToolNotFound (one line) when that is not an executable file."""
    source = "given"
    if not path:
        path, source = os.environ.get("COUPLING_TRAIN"), "COUPLING_TRAIN"
    if not path:
        root = repository()
        if root is None:
            raise ToolNotFound("coupling-train not found: set COUPLING_TRAIN to the binary (this copy of the package "
                               "is not in a libcoupling checkout)")
        path, source = os.path.join(root, "build", "bin", "coupling-train"), "default"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        how = "build it (scripts/build.sh) or set COUPLING_TRAIN" if source == "default" else \
            "give the path of a built coupling-train"
        raise ToolNotFound(f"coupling-train not found at {path} ({source}); {how}")
    return path
