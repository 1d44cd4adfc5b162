"""The grading machine, as recorded in every result (versions, device)."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import sys
from typing import Any

_LIBRARIES = (
    "autograder",
    "torch",
    "torchvision",
    "numpy",
    "matplotlib",
    "nbclient",
    "nbformat",
    "ipykernel",
    "pytest",
    "scikit-learn",
    "scikit-image",
    "pillow",
)


def grader_version() -> str:
    """The installed package's version; from a plain checkout (not installed), its pyproject's."""
    try:
        return importlib.metadata.version("autograder")
    except importlib.metadata.PackageNotFoundError:
        from pathlib import Path

        import tomllib

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]) + "+checkout"


@functools.lru_cache(maxsize=1)
def describe_environment() -> dict[str, Any]:
    """Library versions and the compute device; computed once per process."""
    import torch

    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": versions,
        "cuda_available": cuda,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
    }
