"""What grading produces: frozen dataclasses, and their JSON form (schema 1).

Results cross process and machine boundaries (batch workers, containers), so
they are plain JSON; `SubmissionResult.from_json` reads back what `to_json`
wrote, and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from autograder.safe_text import json_document

SCHEMA_VERSION = 1

CheckStatus = Literal["passed", "failed", "error", "not-run", "environment"]
Visibility = Literal["public", "hidden"]
Status = Literal["graded", "rejected", "error"]


@dataclass(frozen=True)
class CheckOutcome:
    """One check's verdict. `message` is written for the student; `grader_traceback`
    (a check file that did not load, a check that raised) is for the instructor
    only and no student-facing report shows it."""

    question: str
    name: str
    visibility: Visibility
    status: CheckStatus
    score: float
    max_score: float
    bonus: bool = False
    message: str = ""
    grader_traceback: str = ""


@dataclass(frozen=True)
class CellError:
    """Something that went wrong while a cell ran."""

    cell_index: int
    kind: Literal["error", "timeout", "kernel-died", "not-run"]
    exception: str
    message: str


@dataclass(frozen=True)
class ExecutionRecord:
    """How the notebook's run went, before any check looked at it."""

    status: Literal["completed", "timed-out", "kernel-died"]
    code_cells: int
    cells_run: int
    cell_errors: tuple[CellError, ...] = ()
    seconds: float = 0.0
    sandbox: str = "none"


@dataclass(frozen=True)
class QuestionScore:
    question: str
    title: str
    score: float
    max_score: float
    bonus: float = 0.0
    bonus_max: float = 0.0


@dataclass(frozen=True)
class SubmissionResult:
    """Everything known about one graded (or rejected) submission."""

    submission: str
    assignment: str | None
    status: Status
    reason: str = ""
    student: str = ""
    score: float = 0.0
    max_score: float = 0.0
    bonus: float = 0.0
    bonus_max: float = 0.0
    questions: tuple[QuestionScore, ...] = ()
    checks: tuple[CheckOutcome, ...] = ()
    execution: ExecutionRecord | None = None
    timings: dict[str, float] = field(default_factory=dict)
    assets: str = "none"
    answers: dict[str, bool] = field(default_factory=dict)  # question -> written answer present (never scored)
    curves: dict[str, list[float]] = field(default_factory=dict)  # title -> the notebook's numbers, e.g. its loss
    environment: dict[str, Any] = field(default_factory=dict)
    submission_sha256: str = ""
    grader_version: str = ""
    graded_at: str = ""
    grader_traceback: str = ""  # instructor only: where the grader itself failed on this submission
    assignment_chosen_by: str = ""  # how `assignment` was told: "from the file name '...'", "as asked with -a"
    isolation: str = ""  # how the kernel was isolated: namespaces, container, user (a fresh uid only), none; and why
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        """Always writable as UTF-8: a lone surrogate (an undecodable file name) is a `\\u` escape."""
        return json_document(json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False))

    @classmethod
    def from_json(cls, text: str) -> SubmissionResult:
        data = json.loads(text)
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"result schema {data.get('schema_version')!r}, expected {SCHEMA_VERSION}")
        execution = data.get("execution")
        if execution is not None:
            errors = tuple(CellError(**e) for e in execution.pop("cell_errors"))
            execution = ExecutionRecord(**execution, cell_errors=errors)
        return cls(
            **{
                **data,
                "questions": tuple(QuestionScore(**q) for q in data["questions"]),
                "checks": tuple(CheckOutcome(**c) for c in data["checks"]),
                "execution": execution,
            }
        )
