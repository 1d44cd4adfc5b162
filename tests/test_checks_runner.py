"""The check runner's verdicts: pass, fail, error, skip, partial credit, bonus."""

from __future__ import annotations

import pytest

from autograder.course import Course
from tests.conftest import grade, write_notebook

pytestmark = pytest.mark.slow

CHECKS = """
import pytest

@pytest.mark.question("q1")
@pytest.mark.points(2)
def test_pass(student):
    assert student.fetch("x") == 1

@pytest.mark.question("q1")
@pytest.mark.points(3)
def test_fail_with_message(student):
    assert student.fetch("x") == 2, "x should be two"

@pytest.mark.question("q2")
def test_check_bug(student):
    raise KeyError("oops")

@pytest.mark.question("q2")
def test_skipped(student):
    pytest.skip("not today")

@pytest.mark.question("q3")
@pytest.mark.points(4)
def test_partial(student, credit):
    credit.give(0.25, "one of four parts right")

@pytest.mark.question("q3")
@pytest.mark.points(5, bonus=True)
def test_bonus(student):
    assert student.has("x")

@pytest.mark.question("q4")
def test_missing(student):
    student.fetch("nowhere")
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("course")
    (root / "assignments" / "demo" / "public_checks").mkdir(parents=True)
    (root / "solutions" / "demo" / "hidden_checks").mkdir(parents=True)
    write_notebook(root / "assignments" / "demo" / "demo.ipynb", "x = 1")
    (root / "solutions" / "demo" / "hidden_checks" / "test_demo.py").write_text(CHECKS)
    return grade(Course(root), root / "assignments" / "demo" / "demo.ipynb", name="demo")


def test_verdicts(result) -> None:  # type: ignore[no-untyped-def]
    by_name = {c.name: c for c in result.checks}
    assert by_name["test_pass"].status == "passed" and by_name["test_pass"].score == 2
    assert by_name["test_fail_with_message"].status == "failed"
    assert by_name["test_fail_with_message"].message == "x should be two"
    assert by_name["test_check_bug"].status == "error" and "KeyError" in by_name["test_check_bug"].message
    assert by_name["test_skipped"].status == "not-run" and by_name["test_skipped"].score == 0
    assert by_name["test_partial"].score == 1.0 and by_name["test_partial"].status == "failed"
    assert by_name["test_missing"].message == "`nowhere` is not defined in the notebook"


def test_bonus_is_kept_apart(result) -> None:  # type: ignore[no-untyped-def]
    assert result.max_score == 2 + 3 + 1 + 1 + 4 + 1
    assert result.score == 2 + 1
    assert (result.bonus, result.bonus_max) == (5, 5)
    assert result.score <= result.max_score
