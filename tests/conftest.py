"""Shared fixtures. Real notebooks are graded once per session and shared."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from autograder.course import Course
from autograder.grading import GradingOptions, grade_notebook
from autograder.isolation import sandbox_available
from autograder.results import SubmissionResult

if os.geteuid() != 0:  # no sandbox without root: the tests grade references with hidden checks all the same
    os.environ.setdefault("AUTOGRADER_WAIVE_ISOLATION", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TENSORS = "02_tensors"


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


@pytest.fixture(scope="session")
def graded_solutions(course: Course) -> dict[str, SubmissionResult]:
    """Every reference notebook, graded once."""
    return {
        name: grade_notebook(course.get(name).solution, course=course, assignment_name=name)
        for name in gradable_here(course)
    }


@pytest.fixture(scope="session")
def graded_templates(course: Course) -> dict[str, SubmissionResult]:
    """Every blank template, graded once."""
    return {
        name: grade_notebook(course.get(name).template, course=course, assignment_name=name)
        for name in gradable_here(course)
    }


def write_notebook(path: Path, *sources: str, **metadata: object) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata.update(metadata)
    nbformat.write(notebook, path)
    return path


def edited_solution(course: Course, name: str, path: Path, old: str, new: str) -> Path:
    """The reference notebook with one piece of code replaced (a hand-written wrong variant)."""
    document = json.loads(course.get(name).solution.read_text(encoding="utf-8"))
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in document["cells"]]
    hits = [i for i, source in enumerate(sources) if old in source]
    assert len(hits) == 1, f"{old!r} should occur in exactly one cell"
    document["cells"][hits[0]]["source"] = sources[hits[0]].replace(old, new)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def grade(course: Course, path: Path, name: str | None = TENSORS, **options: object) -> SubmissionResult:
    return grade_notebook(path, course=course, assignment_name=name, options=GradingOptions(**options))  # type: ignore[arg-type]
