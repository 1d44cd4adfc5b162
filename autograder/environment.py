"""The grading machine: what every result records of it (versions, device),
and whether a failure is its fault rather than the student's.

A check is `environment` (not gradable here, regrade on a GPU) only when the
machine lacks a GPU *and* the code that failed uses CUDA: the message alone
proves nothing, since any function can raise "Found no NVIDIA driver".
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import platform
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

DISTRIBUTION = "dl-notebook-autograder"  # the name pip knows this project by (`autograder` on PyPI is another)
EXTRA_STANDINS = "standins"  # the optional dependencies of `autograder assets synth`

_LIBRARIES = (
    DISTRIBUTION,
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
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        import tomllib
        from pathlib import Path

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


_NO_GPU_SIGNS = (
    "Torch not compiled with CUDA enabled",
    "No CUDA GPUs are available",
    "Found no NVIDIA driver",
    "CUDA driver",
    "no CUDA-capable device",
    "cuda is not available",
)
# `.cuda(`, `torch.cuda.synchronize()`, `"cuda"`, `'cuda:0'`, `device("cuda")`
_CUDA_CODE = re.compile(r"""\.cuda\s*\(|\bcuda\s*\.|["']cuda(?::\d+)?["']""")
_MAGIC_LINE = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)  # IPython magics and shell escapes
_WORD = re.compile(r"[A-Za-z_]\w*")


def machine_has_gpu() -> bool:
    """Whether this grading machine has a CUDA device (asked once per process)."""
    return bool(describe_environment()["cuda_available"])


def says_no_gpu(message: str) -> bool:
    """True for the messages PyTorch and the driver give where there is no GPU."""
    lowered = message.lower()
    return any(sign.lower() in lowered for sign in _NO_GPU_SIGNS)


def blames_machine(message: str, *, code_uses_gpu: bool, gpu_available: bool | None = None) -> bool:
    """True when a failure saying "no GPU" is the machine's fault: it has none,
    and the code that failed uses CUDA. `gpu_available` defaults to this machine."""
    if gpu_available is None:
        gpu_available = machine_has_gpu()
    return says_no_gpu(message) and code_uses_gpu and not gpu_available


@dataclass(frozen=True)
class GpuUse:
    """Where a notebook's own code uses CUDA: directly (`.cuda()`, `"cuda"`,
    `torch.cuda.`), or through one of its functions or variables that does
    (`device = "cuda"` in one cell, `x.to(device)` in another)."""

    cells: frozenset[int] = frozenset()  # indices of the code cells that use CUDA
    names: frozenset[str] = frozenset()  # the notebook's functions and variables that use CUDA

    @classmethod
    def of(cls, sources: Sequence[str | None]) -> GpuUse:
        """From the notebook's cells in order (None for a cell that is not code)."""
        statements = [statement for source in sources if source is not None for statement in _statements(source)]
        names: set[str] = set()
        grew = True
        while grew:  # a function calling a function that uses CUDA uses it too
            grew = False
            for bound, direct, mentioned in statements:
                if bound - names and (direct or mentioned & names):
                    names |= bound
                    grew = True
        cells = {
            index
            for index, source in enumerate(sources)
            if source is not None and (_CUDA_CODE.search(source) or _words(source) & names)
        }
        return cls(frozenset(cells), frozenset(names))


def _statements(source: str) -> Iterator[tuple[set[str], bool, set[str]]]:
    """Per top-level statement of a cell that binds names: those names, whether
    its code uses CUDA directly, and the names it mentions. A cell that does not
    parse counts as one statement, its names found by pattern."""
    code = _MAGIC_LINE.sub(lambda line: f"{line.group(1)}pass", source)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        found = re.findall(r"^\s*(?:def|class)\s+(\w+)|^(\w+)\s*=", source, re.MULTILINE)
        yield {name for pair in found for name in pair if name}, bool(_CUDA_CODE.search(source)), _words(source)
        return
    for statement in tree.body:
        bound = _bound(statement)
        if bound:
            segment = ast.get_source_segment(code, statement) or ""
            yield bound, bool(_CUDA_CODE.search(segment)), _words(segment)


def _bound(statement: ast.stmt) -> set[str]:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return {node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)}
    return set()


def _words(source: str) -> set[str]:
    return set(_WORD.findall(source))
