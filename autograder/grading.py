"""Grading one submission: intake -> execution -> checks -> scoring -> result.

`grade_notebook` never raises for a bad submission: whatever goes wrong
becomes a result with a status and a reason, so a batch always goes on.
"""

from __future__ import annotations

import datetime
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autograder.checks import CheckFile, is_environment_failure, run_checks
from autograder.container import ContainerSettings, grade_in_container
from autograder.course import Assignment, Course
from autograder.environment import describe_environment, grader_version
from autograder.errors import NotANotebookError, UnknownAssignmentError
from autograder.execution import executed_notebook
from autograder.intake import Submission, read_submission
from autograder.results import ExecutionReport, SubmissionResult
from autograder.sandbox import open_workspace
from autograder.scoring import score_outcomes


@dataclass(frozen=True)
class GradingOptions:
    """How to grade, beyond what the assignment's config says."""

    public_only: bool = False  # the student's self-check
    cell_timeout_s: float | None = None
    notebook_timeout_s: float | None = None
    container: ContainerSettings | None = None  # grade in a container of this image instead of here


def grade_notebook(
    path: Path,
    *,
    course: Course,
    assignment_name: str | None = None,
    options: GradingOptions = GradingOptions(),
    on_assignment: Callable[[Path, str, str], None] | None = None,
) -> SubmissionResult:
    """Grade one notebook file and return its result (graded, rejected or error).

    `on_assignment(path, name, how)` is called once the assignment is known,
    so a caller can say which one was chosen and why.
    """
    if options.container is not None:
        return grade_in_container(
            path,
            settings=options.container,
            assignment_name=assignment_name,
            cell_timeout_s=options.cell_timeout_s,
            notebook_timeout_s=options.notebook_timeout_s,
        )
    started = time.monotonic()
    try:
        submission = read_submission(path)
    except NotANotebookError as error:
        return _unfinished(path, assignment_name, "rejected", error.reason)
    try:
        if assignment_name is None:
            assignment, how = course.recognise(submission)
        else:
            assignment, how = course.get(assignment_name), "as asked with -a"
    except UnknownAssignmentError as error:
        return _unfinished(path, assignment_name, "rejected", str(error), submission.sha256)
    if on_assignment is not None:
        on_assignment(path, assignment.name, how)
    try:
        return _grade(submission, assignment, options, started)
    except Exception as error:  # one submission's failure must not stop a batch
        reason = f"the grader failed on this submission: {type(error).__name__}: {error}"
        return _unfinished(path, assignment.name, "error", reason, submission.sha256)


def _grade(submission: Submission, assignment: Assignment, options: GradingOptions, started: float) -> SubmissionResult:
    config = assignment.config.with_overrides(
        cell_timeout_s=options.cell_timeout_s, notebook_timeout_s=options.notebook_timeout_s
    )
    files = [CheckFile(p, "public") for p in assignment.public_checks]
    if not options.public_only:
        files += [CheckFile(p, "hidden") for p in assignment.hidden_checks]
    intake_s = time.monotonic() - started
    hide = [assignment.solution_dir.parent, submission.path.resolve().parent]
    with open_workspace(config, hide=hide) as workspace:
        _provide_files(assignment, workspace.workdir)
        with executed_notebook(submission.notebook, workspace=workspace, config=config) as (report, student):
            checks_started = time.monotonic()
            outcomes = run_checks(files, student, environment_failure=_environment_failure(report))
            checks_s = time.monotonic() - checks_started
    sheet = score_outcomes(outcomes, config.questions)
    return SubmissionResult(
        submission=str(submission.path),
        assignment=assignment.name,
        status="graded",
        score=sheet.score,
        max_score=sheet.max_score,
        bonus=sheet.bonus,
        bonus_max=sheet.bonus_max,
        questions=sheet.questions,
        checks=tuple(outcomes),
        execution=report,
        timings={
            "intake_s": round(intake_s, 3),
            "execution_s": report.seconds,
            "checks_s": round(checks_s, 3),
            "total_s": round(time.monotonic() - started, 3),
        },
        environment=describe_environment(),
        submission_sha256=submission.sha256,
        grader_version=grader_version(),
        graded_at=_now(),
    )


def _provide_files(assignment: Assignment, workdir: Path) -> None:
    """Copy only what the assignment provides into the fresh working folder."""
    for relative in assignment.config.files:
        source = assignment.public_dir / relative
        target = workdir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    owner = workdir.stat()
    for path in workdir.rglob("*"):  # the submission's own user may change what it was given
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


def _environment_failure(report: ExecutionReport) -> str | None:
    for error in report.cell_errors:
        if is_environment_failure(f"{error.exception}: {error.message}"):
            return f"cell {error.cell_index} ({error.exception}: {error.message[:120]})"
    return None


def _unfinished(path: Path, assignment: str | None, status: str, reason: str, sha256: str = "") -> SubmissionResult:
    return SubmissionResult(
        submission=str(path),
        assignment=assignment,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        environment=describe_environment(),
        submission_sha256=sha256,
        grader_version=grader_version(),
        graded_at=_now(),
    )


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
