"""The check runner's verdicts: pass, fail, error, skip, partial credit, bonus, and a check file that does not load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autograder.batch import BatchItem
from autograder.course import Course
from autograder.exports import write_batch_reports
from autograder.results import SubmissionResult
from autograder.submissions import Entry
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

@pytest.mark.question("q4")
def test_check_bug_on_kernel_text(student):
    import torch
    torch.device(student.fetch("where"))  # raises, naming the notebook's string
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("course")
    (root / "assignments" / "demo" / "public_checks").mkdir(parents=True)
    (root / "solutions" / "demo" / "hidden_checks").mkdir(parents=True)
    write_notebook(root / "assignments" / "demo" / "demo.ipynb", "x = 1\nwhere = 'sentinel_kernel_text'")
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


def test_a_hidden_checks_own_error_repeats_no_kernel_text(result) -> None:  # type: ignore[no-untyped-def]
    """A hidden check that breaks on a value the kernel sent (torch.device of a
    forged string) names the error's class only; the text is the instructor's."""
    outcome = {c.name: c for c in result.checks}["test_check_bug_on_kernel_text"]
    assert outcome.status == "error" and "RuntimeError" in outcome.message
    assert "sentinel_kernel_text" not in outcome.message
    assert "sentinel_kernel_text" in outcome.grader_traceback


def test_bonus_is_kept_apart(result) -> None:  # type: ignore[no-untyped-def]
    assert result.max_score == 2 + 3 + 1 + 1 + 4 + 1 + 1
    assert result.score == 2 + 1
    assert (result.bonus, result.bonus_max) == (5, 5)
    assert result.score <= result.max_score


PUBLIC_CHECK = """
import pytest

@pytest.mark.question("q1")
def test_public(student):
    assert student.fetch("x") == 1
"""
HIDDEN_CHECK = """
import pytest

@pytest.mark.question("q2")
def test_hidden(student):
    assert student.fetch("x") == 1
"""
BROKEN_PUBLIC = 'raise RuntimeError("sentinel_public_setup broke")\n'
BROKEN_HIDDEN = "import sentinel_hidden_module_nowhere\n"


@pytest.fixture(scope="module")
def broken_course(tmp_path_factory: pytest.TempPathFactory) -> Course:
    """Two check files that raise at import (one public, one hidden) beside two that work."""
    root = tmp_path_factory.mktemp("broken-course")
    public, hidden = root / "assignments" / "demo" / "public_checks", root / "solutions" / "demo" / "hidden_checks"
    public.mkdir(parents=True)
    hidden.mkdir(parents=True)
    write_notebook(root / "assignments" / "demo" / "demo.ipynb", "x = 1")
    (public / "test_public.py").write_text(PUBLIC_CHECK)
    (public / "test_public_broken.py").write_text(BROKEN_PUBLIC)
    (hidden / "test_hidden.py").write_text(HIDDEN_CHECK)
    (hidden / "test_hidden_broken.py").write_text(BROKEN_HIDDEN)
    return Course(root)


@pytest.fixture(scope="module")
def broken_result(broken_course: Course) -> SubmissionResult:
    return grade(broken_course, broken_course.get("demo").template, name="demo")


def test_a_check_file_that_does_not_import_is_the_graders_error(broken_result: SubmissionResult) -> None:
    result = broken_result
    assert result.status == "error"
    assert "test_public_broken.py" in result.reason and "test_hidden_broken.py" in result.reason
    by_name = {c.name: c for c in result.checks}
    assert by_name["test_public"].status == "passed" and by_name["test_hidden"].status == "passed", "the others ran"
    assert "sentinel_public_setup" in by_name["test_public_broken.py"].grader_traceback
    assert "sentinel_hidden_module_nowhere" in by_name["test_hidden_broken.py"].grader_traceback
    assert "sentinel" not in result.reason + "".join(c.message for c in result.checks)
    text = SubmissionResult.from_json(result.to_json()).to_json()
    assert "sentinel_public_setup" in text and "sentinel_hidden_module_nowhere" in text, "kept for the instructor"


def test_the_traceback_never_reaches_the_student(
    broken_course: Course, broken_result: SubmissionResult, tmp_path: Path
) -> None:
    item = BatchItem(Entry("ann", Path(broken_result.submission)), broken_result, cached=False)
    write_batch_reports([item], tmp_path, title="Demo", titles={"demo": "Demo"})
    shown = [p.read_text(encoding="utf-8") for p in tmp_path.rglob("*") if p.suffix in (".md", ".html", ".json")]
    feedback = [p.name for p in (tmp_path / "feedback").iterdir()]
    assert any(name.endswith(".md") for name in feedback) and any(name.endswith(".html") for name in feedback)
    assert shown and not [text for text in shown if "sentinel" in text or "Traceback" in text]
    command = [str(Path(sys.executable).parent / "autograder"), "--course", str(broken_course.root), "check"]
    done = subprocess.run(
        [*command, str(broken_course.get("demo").template)], capture_output=True, text=True, timeout=300
    )
    said = done.stdout + done.stderr
    assert "test_public_broken.py" in said and "sentinel" not in said and "Traceback" not in said, said
