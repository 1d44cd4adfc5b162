"""The contract every assignment keeps: reference full marks, template zero."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from autograder.contract import hidden_check_names, verify_assignment
from autograder.course import Course
from autograder.results import SubmissionResult


def test_every_solution_scores_full_marks(graded_solutions: Mapping[str, SubmissionResult]) -> None:
    assert graded_solutions, "the course has no assignments"
    for name, result in graded_solutions.items():
        failing = [(c.name, c.message) for c in result.checks if c.status != "passed"]
        assert result.status == "graded", (name, result.reason)
        assert result.max_score > 0, name
        assert result.score == result.max_score, (name, failing)


def test_every_template_scores_zero_without_crashing(graded_templates: Mapping[str, SubmissionResult]) -> None:
    for name, result in graded_templates.items():
        assert result.status == "graded", (name, result.reason)
        assert result.score == 0 and result.max_score > 0, name
        assert all(c.status in ("failed", "not-run") for c in result.checks), name
        assert all(c.message for c in result.checks), name


@pytest.mark.sandbox  # assignments reading /kaggle paths need it (CI runs as root)
def test_every_assignment_is_graded_where_the_sandbox_exists(
    course: Course, graded_solutions: Mapping[str, SubmissionResult]
) -> None:
    assert sorted(graded_solutions) == sorted(course.names())


def test_solution_records_environment_and_timings(graded_solutions: Mapping[str, SubmissionResult]) -> None:
    result = graded_solutions["02_tensors"]
    assert result.environment["libraries"]["torch"]
    assert result.environment["cuda_available"] in (True, False)
    assert result.timings["total_s"] > 0
    assert result.execution is not None and result.execution.status == "completed"


def test_no_public_file_names_a_hidden_check(course: Course) -> None:
    for name in course.names():
        assignment = course.get(name)
        names = hidden_check_names(assignment)
        assert names, f"{name} has no hidden checks"
        for path in assignment.public_dir.rglob("*"):
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                assert not [n for n in names if n in text], path


@pytest.mark.slow
def test_verify_reports_every_clause_ok(course: Course) -> None:
    findings = verify_assignment(course, "02_tensors")
    assert [f.what for f in findings if not f.ok] == []
    assert len(findings) >= 8
