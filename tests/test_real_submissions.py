"""The course's real week-4 submissions (../shared/real-submissions), graded once
per session as an instructor would (`grade FOLDER --out DIR`), compared with a
human review written before the checks existed
(tests/data/real_submissions_review.toml, never regenerated from the grader).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from autograder.results import SubmissionResult
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

REVIEW = tomllib.loads((ROOT / "tests" / "data" / "real_submissions_review.toml").read_text(encoding="utf-8"))
NOTEBOOKS = ("warmup_04", "project_04")
# Where the grader and the review still differ, after finding out which is right:
# (student, notebook, question) -> why the grader's outcome stands.
KNOWN_DIFFERENCES: dict[tuple[str, str, str], str] = {}


@pytest.fixture(scope="session")
def graded_class(real_submissions: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole class, graded once through the command line with two workers."""
    out = tmp_path_factory.mktemp("class")
    command = [sys.executable, "-m", "autograder", "grade", str(real_submissions), "--out", str(out), "-j", "2"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=1500, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def results(graded_class: Path) -> dict[tuple[str, str], SubmissionResult]:
    found = {}
    for path in (graded_class / "results").glob("*.json"):
        result = SubmissionResult.from_json(path.read_text(encoding="utf-8"))
        found[(result.student or path.name.split("__")[0], Path(result.submission).stem)] = result
    return found


def outcome(result: SubmissionResult, question: str) -> str:
    """The review's vocabulary: pass, partial, fail, environment."""
    checks = [c for c in result.checks if c.question == question]
    if not checks:
        return "pass"  # nothing scored (a written-answer-only question)
    if any(c.status == "environment" for c in checks):
        return "environment"
    if all(c.status == "passed" for c in checks):
        return "pass"
    return "partial" if any(c.status == "passed" for c in checks) else "fail"


def review_rows() -> list[tuple[str, str, str, dict[str, object]]]:
    return [
        (student, notebook, question, row)
        for student, notebooks in REVIEW.items()
        for notebook, questions in notebooks.items()
        for question, row in questions.items()
    ]


def test_every_real_submission_grades_without_a_crash(results: dict[tuple[str, str], SubmissionResult]):
    expected = {(s, n) for s, n, _, row in review_rows() if row["outcome"] != "absent"}
    assert expected <= set(results), f"not graded: {sorted(expected - set(results))}"
    for key, result in results.items():
        assert result.status == "graded", (key, result.reason)


def test_grader_agrees_with_the_human_review(results: dict[tuple[str, str], SubmissionResult]):
    disagreements = []
    for student, notebook, question, row in review_rows():
        if row["outcome"] == "absent":
            assert (student, notebook) not in results
            continue
        got = outcome(results[(student, notebook)], question)
        if got != row["outcome"] and (student, notebook, question) not in KNOWN_DIFFERENCES:
            checks = [c for c in results[(student, notebook)].checks if c.question == question]
            said = "; ".join(f"{c.name}: {c.status} {c.message}" for c in checks if c.status != "passed")
            disagreements.append(f"{student} {notebook} {question}: review {row['outcome']}, grader {got} ({said})")
    assert not disagreements, "\n".join(disagreements)


def test_written_answers_mostly_found_where_the_reviewer_saw_them(results: dict[tuple[str, str], SubmissionResult]):
    """A presence hint for mentors, not a score: most should agree with a human."""
    pairs = [
        (results[(s, n)].answers.get(q), bool(row["answer"]))
        for s, n, q, row in review_rows()
        if row["outcome"] != "absent" and q in results[(s, n)].answers
    ]
    assert pairs, "no written answers reported"
    agreement = sum(found == seen for found, seen in pairs) / len(pairs)
    assert agreement >= 0.8, agreement


def test_one_gradebook_row_per_student_covering_both_notebooks(graded_class: Path):
    with (graded_class / "gradebook.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["student"] for row in rows) == sorted(REVIEW)
    environment = {student for student, _, _, row in review_rows() if row["outcome"] == "environment"}
    for row in rows:  # the mentor reading the gradebook learns which zeros a GPU regrade would change
        assert ("regrade on a GPU" in row["reason"]) == (row["student"] in environment), row
    summary = (graded_class / "summary.html").read_text(encoding="utf-8")
    assert "<script src=" not in summary


def test_results_record_assets_and_library_versions(results: dict[tuple[str, str], SubmissionResult]):
    for result in results.values():
        assert result.assets != "none"
        libraries = result.environment["libraries"]
        assert libraries["torch"] and libraries["matplotlib"].startswith("3.10")
