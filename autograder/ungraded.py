"""The one builder of results that were not graded: input refused before
grading (`rejected`), or the grader failing on a submission (`error`). Every
such result carries the same fields, wherever it was made (intake, selection,
the container path, a batch worker's death).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from autograder.environment import describe_environment, grader_version
from autograder.results import Status, SubmissionResult


def ungraded_result(
    path: Path,
    *,
    status: Status,
    reason: str,
    assignment: str | None = None,
    sha256: str = "",
    student: str = "",
    grader_traceback: str = "",
    assignment_chosen_by: str = "",
) -> SubmissionResult:
    """A result with no checks: `reason` says why, for the student and the
    instructor alike; `grader_traceback` is the instructor's alone."""
    return SubmissionResult(
        submission=str(path),
        assignment=assignment,
        status=status,
        reason=reason,
        student=student,
        environment=describe_environment(),
        submission_sha256=sha256,
        grader_version=grader_version(),
        graded_at=now(),
        grader_traceback=grader_traceback,
        assignment_chosen_by=assignment_chosen_by,
    )


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
