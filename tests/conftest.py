"""Shared fixtures and what the markers do.

Real notebooks are graded once per session and shared. The markers mean what
they say, and this file makes them: a test using a kernel fixture is `slow`
(`-m "not slow"` starts no kernel, and tests/kernel_guard.py fails a test
that does); `sandbox` and `docker` tests skip, with the reason, where this
machine cannot run them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import nbformat
import pytest

from autograder.course import Assignment, Course
from autograder.grading import GradingOptions, grade_notebook
from autograder.isolation import sandbox_available
from autograder.results import SubmissionResult
from tests.kernel_guard import KernelGuard

if os.geteuid() != 0:  # no sandbox without root: the tests grade references with hidden checks all the same
    os.environ.setdefault("AUTOGRADER_WAIVE_ISOLATION", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TENSORS = "02_tensors"

# Fixtures that grade notebooks: a test using one (directly or through another fixture) is slow.
KERNEL_FIXTURES = {"graded_solutions", "graded_templates", "reference_result", "template_result", "variant_result"}


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(KernelGuard(), "kernel-guard")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = {"sandbox": _sandbox_missing, "docker": _docker_missing}
    course, kaggle = Course(ROOT), dict[str, bool]()
    for item in items:
        if KERNEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
            assignment = getattr(getattr(item, "cls", None), "assignment", None)  # tests.harness.AssignmentTests
            if assignment and kaggle.setdefault(assignment, bool(course.get(assignment).config.kaggle_inputs)):
                item.add_marker(pytest.mark.sandbox)  # only the sandbox shows the notebook its /kaggle/input
        for marker, why_not in missing.items():
            if item.get_closest_marker(marker) and (reason := why_not()):
                item.add_marker(pytest.mark.skip(reason=reason))


def _sandbox_missing() -> str:
    return "" if sandbox_available() else "the sandbox needs root on Linux with cgroup v1"


def _docker_missing() -> str:
    # As root on Linux (CI) a Docker that does not work fails these tests; they skip only where they cannot run.
    if sys.platform == "linux" and os.geteuid() == 0:
        return ""
    return "building the image and running containers needs root on Linux"


@pytest.fixture(scope="session")
def course() -> Course:
    return Course(ROOT)


@pytest.fixture(scope="session")
def real_submissions() -> Path:
    folder = SHARED / "real-submissions"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (the course's real notebooks live beside the checkout)")
    return folder


def gradable_here(course: Course) -> list[str]:
    """Every assignment, less those reading Kaggle's /kaggle paths where no
    sandbox can show them (not root): those run in CI, as root."""
    return [name for name in course.names() if sandbox_available() or not course.get(name).config.kaggle_inputs]


class GradedOnce(Mapping[str, SubmissionResult]):
    """One notebook of each assignment gradable here, graded when first asked
    for and kept: a run of one assignment's tests grades that assignment only."""

    def __init__(self, course: Course, notebook: Callable[[Assignment], Path]) -> None:
        self._course, self._notebook = course, notebook
        self._names = gradable_here(course)
        self._results: dict[str, SubmissionResult] = {}

    def __getitem__(self, name: str) -> SubmissionResult:
        if name not in self._names:
            raise KeyError(name)
        if name not in self._results:
            path = self._notebook(self._course.get(name))
            self._results[name] = grade_notebook(path, course=self._course, assignment_name=name)
        return self._results[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@pytest.fixture(scope="session")
def graded_solutions(course: Course) -> Mapping[str, SubmissionResult]:
    """Every reference notebook, graded once."""
    return GradedOnce(course, lambda assignment: assignment.solution)


@pytest.fixture(scope="session")
def graded_templates(course: Course) -> Mapping[str, SubmissionResult]:
    """Every blank template, graded once."""
    return GradedOnce(course, lambda assignment: assignment.template)


def write_notebook(path: Path, *sources: str, **metadata: object) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata.update(metadata)
    nbformat.write(notebook, path)
    return path


def grade(course: Course, path: Path, name: str | None = TENSORS, **options: object) -> SubmissionResult:
    return grade_notebook(path, course=course, assignment_name=name, options=GradingOptions(**options))  # type: ignore[arg-type]
