"""The package stays `ruff` clean and `mypy --strict` clean (configured in pyproject), the tests repeat no block,
its standalone modules import only the standard library, and the README maps every module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


def test_ruff_is_clean() -> None:
    done = subprocess.run([str(BIN / "ruff"), "check", "autograder", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_no_block_of_six_lines_is_repeated_between_test_files() -> None:
    """What every assignment's tests share lives once, in tests/harness.py: a
    copy in a test file (of its variant notebook, its reference assertions) fails here."""
    command = [str(BIN / "pylint"), "--rcfile=/dev/null", "--persistent=n", "--disable=all", "--enable=duplicate-code"]
    command += ["--min-similarity-lines=6", "tests"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict_is_clean() -> None:
    done = subprocess.run([str(BIN / "mypy")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout


# Run where the grader's package cannot load: in the student's kernel (wire.py,
# sent as source with every request; figure_records.py, sent before the first
# cell) or as root before the privilege drop.
STANDALONE = {
    "autograder/wire.py": {"torch", "numpy", "IPython"},  # lazily, inside the kernel's functions
    "autograder/figure_records.py": {"matplotlib", "numpy", "PIL"},  # once the notebook imported them
    "autograder/isolation/entry.py": set(),
    # a warm start's worker, a fork of the server, runs the grader's command line
    "autograder/isolation/forkserver.py": {"entry", "torch", "ipykernel", "autograder"},
}


@pytest.mark.parametrize("relative", sorted(STANDALONE))
def test_standalone_modules_import_only_the_standard_library(relative: str) -> None:
    tree = ast.parse((ROOT / relative).read_text())
    top_level, anywhere = set(), set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module.split(".")[0]]
        anywhere.update(names)
        if node in tree.body:
            top_level.update(names)
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    assert top_level <= stdlib, f"{relative} imports {sorted(top_level - stdlib)} at load"
    assert anywhere <= stdlib | STANDALONE[relative], f"{relative} imports {sorted(anywhere - stdlib)}"


def test_the_readme_module_map_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## How grading works")
    block = readme[readme.index("```", start) : readme.index("```", readme.index("```", start) + 3)]
    named = {line.split()[0] for line in block.splitlines()[1:] if line.strip()}
    package = ROOT / "autograder"
    modules = {p.name for p in package.rglob("*.py") if p.name != "__init__.py" or p.parent != package}
    assert modules <= named, f"not in the README's module map: {sorted(modules - named)}"
