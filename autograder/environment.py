"""The grading machine: what every result records of it (versions, device),
and whether a failure is its fault rather than the student's.

A check is `environment` (not gradable here, regrade on a GPU) only when the
machine lacks a GPU *and* the code that failed uses CUDA: the message alone
proves nothing, since any function can raise "Found no NVIDIA driver".
Likewise for the course's data: where the kernel cannot be shown
/kaggle/input (off root, no user namespaces), a failure in code that uses
those paths is the machine's (`MissingData`).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import io
import platform
import re
import sys
import tokenize
from collections.abc import Iterable, Iterator, Sequence
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
        return cls(*_uses(sources, _CUDA_CODE))


_ON_KAGGLE = "check it on Kaggle instead, where the data is, with `selfcheck.check()` in the notebook's last cell"


@dataclass(frozen=True)
class MissingData:
    """The course's data paths grading shows the kernel and this machine could
    not (`Workspace.missing`: /kaggle/input/... off root without user
    namespaces), and where the notebook's own code uses them, directly (a path
    in its code, comments aside) or through its functions and variables, as
    `GpuUse` finds CUDA. A failure there is the machine's, not the student's."""

    paths: tuple[str, ...] = ()  # what this machine lacks
    named: tuple[str, ...] = ()  # those the notebook's code names (or the part of them it names)
    cells: frozenset[int] = frozenset()
    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, sources: Sequence[str | None], paths: Sequence[str]) -> MissingData:
        if not paths:
            return cls()
        pattern = _paths_pattern(paths)
        code = [None if source is None else _without_comments(source) for source in sources]
        cells, names = _uses(code, pattern)
        named = sorted({match.rstrip("/") for index in cells for match in pattern.findall(code[index] or "")})
        return cls(tuple(paths), tuple(named or paths), cells, names)

    @property
    def message(self) -> str:
        """What the student is told: what is missing and where to check instead."""
        verb = "is" if len(self.named) == 1 else "are"
        return f"{' and '.join(self.named)} {verb} not on this machine: {_ON_KAGGLE}"


def _paths_pattern(paths: Sequence[str]) -> re.Pattern[str]:
    """A missing path, or anything inside it; or a folder above one, as itself
    (`"/kaggle/input"`, `f"/kaggle/input/{name}"`), never another path below
    it (`/kaggle/temp` is missing in grading too)."""
    above = {"/".join(p.split("/")[:depth]) for p in paths for depth in range(2, p.count("/") + 1)} - set(paths)

    def either(found: Iterable[str]) -> str:
        return "|".join(re.escape(path) for path in sorted(found, key=len, reverse=True))

    inside, itself = rf"(?:{either(paths)})(?![\w.-])", rf"(?:{either(above)})(?:/(?![\w.-])|(?![\w./-]))"
    return re.compile(rf"(?<![\w./-])(?:{inside}|{itself})" if above else rf"(?<![\w./-]){inside}")


def _uses(sources: Sequence[str | None], pattern: re.Pattern[str]) -> tuple[frozenset[int], frozenset[str]]:
    """The cells and the notebook's own names whose code matches `pattern`,
    directly or through names that do."""
    statements = [s for source in sources if source is not None for s in _statements(source, pattern)]
    names: set[str] = set()
    grew = True
    while grew:  # a function calling a function that uses it uses it too
        grew = False
        for bound, direct, mentioned in statements:
            if bound - names and (direct or mentioned & names):
                names |= bound
                grew = True
    cells = {
        index
        for index, source in enumerate(sources)
        if source is not None and (pattern.search(source) or _words(source) & names)
    }
    return frozenset(cells), frozenset(names)


def _statements(source: str, pattern: re.Pattern[str]) -> Iterator[tuple[set[str], bool, set[str]]]:
    """Per top-level statement of a cell that binds names: those names, whether
    its code matches `pattern`, and the names it mentions. A cell that does not
    parse counts as one statement, its names found by pattern."""
    code = _MAGIC_LINE.sub(lambda line: f"{line.group(1)}pass", source)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        found = re.findall(r"^\s*(?:def|class)\s+(\w+)|^(\w+)\s*=", source, re.MULTILINE)
        yield {name for pair in found for name in pair if name}, bool(pattern.search(source)), _words(source)
        return
    for statement in tree.body:
        bound = _bound(statement)
        if bound:
            segment = ast.get_source_segment(code, statement) or ""
            yield bound, bool(pattern.search(segment)), _words(segment)


def _without_comments(source: str) -> str:
    """The cell with its comments blanked (Kaggle's template mentions
    /kaggle/working in one); as it is where it does not tokenize."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return source
    lines = source.splitlines(keepends=True)
    for token in reversed([t for t in tokens if t.type == tokenize.COMMENT]):
        row, start = token.start
        _, end = token.end
        line = lines[row - 1]
        lines[row - 1] = line[:start] + line[end:]
    return "".join(lines)


def _bound(statement: ast.stmt) -> set[str]:
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return {node.id for target in targets for node in ast.walk(target) if isinstance(node, ast.Name)}
    return set()


def _words(source: str) -> set[str]:
    return set(_WORD.findall(source))
