"""GitHub Actions: what `autograder check --format github` leaves for a homework
repository's workflow run (`assignments/github/autograder-selfcheck.yml`).

* `job_summary`: Markdown for `$GITHUB_STEP_SUMMARY`, a table per notebook
  (question, result, points, hint). Every student-derived string goes through
  `safe_text.markdown_text`, and the whole stays under GitHub's 1 MiB limit
  (`append_job_summary` counts what the step's summary already holds).
* `classroom_notices`: the two workflow commands GitHub Classroom's reporter
  (classroom-resources/autograding-grading-reporter) prints, from which
  Classroom reads the points: `Points X/Y` and `{"totalPoints":X,"maxPoints":Y}`.
* `commands_stopped`: the runner acts on any log line starting with `::`, and
  student text (a file name, a message quoting the student's value) could be
  one; inside this block GitHub's `stop-commands` makes the log plain text.

The points are the public checks' over every notebook checked: the student's
own workflow reports them, so they are self-reported, never the grade.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from autograder.course import Course
from autograder.errors import ReportWriteError, UnknownAssignmentError
from autograder.results import CheckOutcome, SubmissionResult
from autograder.safe_text import markdown_code, markdown_text

SUMMARY_LIMIT_BYTES = 1024 * 1024  # the runner drops a step summary larger than this
_TRUNCATED = (
    "\n_The rest is left out: GitHub shows at most 1 MiB of a step's summary. "
    "The step's log has every notebook's result._\n"
)
_LONGEST_TEXT = 1000  # characters of one hint or reason, before escaping
_MARKS = {"passed": "✅ passed", "failed": "❌ failed", "environment": "⚙️ not checkable here"}
_SELF_REPORTED = (
    "_Self-check: the public checks only, run by a workflow in your own repository, so these points are "
    "self-reported. Your grade is the instructor's grading, which adds hidden checks on new inputs._"
)


def job_summary(results: Sequence[SubmissionResult], *, budget: int = SUMMARY_LIMIT_BYTES) -> str:
    """The Markdown summary of these self-checks, at most `budget` bytes of UTF-8
    (cut at a line, with a note saying so)."""
    total, most = public_points(results)
    lines = [f"## Self-check: {_number(total)}/{_number(most)} points", "", _SELF_REPORTED, ""]
    for result in results:
        lines += _notebook_section(result)
    return _fit(lines, budget)


def append_job_summary(path: Path, results: Sequence[SubmissionResult]) -> None:
    """Append the summary to the step's summary file, as GitHub's own tools do,
    within what the file has left of the 1 MiB."""
    try:
        used = path.stat().st_size if path.exists() else 0
        text = job_summary(results, budget=SUMMARY_LIMIT_BYTES - used)
        with path.open("a", encoding="utf-8") as summary:
            summary.write(text)
    except OSError as error:
        raise ReportWriteError(f"cannot write the job summary to {path}: {error.strerror or error}") from error


def classroom_notices(results: Sequence[SubmissionResult]) -> list[str]:
    """The two lines GitHub Classroom's reporter prints; none when there are no
    points to report (as the reporter does)."""
    total, most = public_points(results)
    if not most:
        return []
    report = json.dumps({"totalPoints": _json_number(total), "maxPoints": _json_number(most)}, separators=(",", ":"))
    return [
        workflow_command("notice", f"Points {_number(total)}/{_number(most)}", title="Autograding complete"),
        workflow_command("notice", report, title="Autograding report"),
    ]


def exit_code(results: Sequence[SubmissionResult], *, course: Course) -> int:
    """1 when the grader failed on a notebook, or when a notebook's assignment asks
    (`fail_on_failed_check`) and one of its public checks failed; else 0, whatever
    the checks said. A notebook the grader refused is the summary's to say."""
    if any(result.status == "error" for result in results):
        return 1
    for result in results:
        if result.status != "graded" or result.assignment is None:
            continue
        try:
            strict = course.get(result.assignment).config.fail_on_failed_check
        except UnknownAssignmentError:
            strict = False
        if strict and any(_status([check]) == "failed" for check in _public(result)):
            return 1
    return 0


def public_points(results: Sequence[SubmissionResult]) -> tuple[float, float]:
    """Points and most points of the public checks (bonus apart) over every notebook checked."""
    checks = [check for result in results for check in _public(result) if not check.bonus]
    return round(sum(c.score for c in checks), 6), round(sum(c.max_score for c in checks), 6)


def workflow_command(command: str, message: str, **properties: str) -> str:
    """`::command key=value,...::message`, escaped as GitHub's toolkit escapes it
    (`@actions/core`: `%`, CR and LF in the message; also `:` and `,` in a property)."""
    given = ",".join(f"{key}={_escape_property(value)}" for key, value in properties.items() if value)
    return f"::{command}{' ' + given if given else ''}::{_escape_data(message)}"


@contextmanager
def commands_stopped(out: TextIO) -> Iterator[None]:
    """Within the block, the runner reads the step's log as text only (GitHub's
    `::stop-commands::TOKEN`, resumed by `::TOKEN::`), so nothing a student wrote
    can be a workflow command. The token is random: no notebook can resume early."""
    token = secrets.token_hex(16)
    out.write(f"::stop-commands::{token}\n")
    out.flush()  # before any line on stderr: the runner reads both streams
    try:
        yield
    finally:
        sys.stderr.flush()
        out.flush()
        out.write(f"::{token}::\n")
        out.flush()


def _notebook_section(result: SubmissionResult) -> list[str]:
    shown = markdown_code(_clip(result.submission, 300))
    if result.status == "rejected":
        return [f"### {shown}: not checked", "", markdown_text(_clip(result.reason)), ""]
    if result.status == "error":
        return [f"### {shown}: the grader failed", "", markdown_text(_clip(result.reason)), ""]
    checks = _public(result)
    points = sum(c.score for c in checks if not c.bonus), sum(c.max_score for c in checks if not c.bonus)
    heading = f"### {shown} ({markdown_text(result.assignment or '')}): {_number(points[0])}/{_number(points[1])}"
    lines = [heading, "", "| question | result | points | hint |", "| --- | --- | --- | --- |"]
    for question in result.questions:
        mine = [c for c in checks if c.question == question.question]
        if not mine:
            continue
        regular = [c for c in mine if not c.bonus]
        score = f"{_number(sum(c.score for c in regular))}/{_number(sum(c.max_score for c in regular))}"
        hints = dict.fromkeys(_clip(c.message or "not right yet") for c in mine if c.status != "passed")
        cells = [
            markdown_text(f"{question.question} {question.title}"),
            _MARKS[_status(mine)],
            score,
            "<br>".join(markdown_text(hint) for hint in hints),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", *_execution_lines(result)]


def _execution_lines(result: SubmissionResult) -> list[str]:
    execution = result.execution
    if execution is None:
        return []
    lines = [
        "- " + markdown_text(_clip(f"cell {e.cell_index} {e.kind}: {e.exception}: {e.message}", 300))
        for e in execution.cell_errors
    ]
    if execution.status != "completed":
        lines.append(
            f"- the notebook stopped ({execution.status}) after {execution.cells_run}/{execution.code_cells} code cells"
        )
    return [*lines, ""] if lines else []


def _public(result: SubmissionResult) -> list[CheckOutcome]:
    return [check for check in result.checks if check.visibility == "public"] if result.status == "graded" else []


def _status(checks: Sequence[CheckOutcome]) -> str:
    """A question's mark: passed when every check passed; `environment` when only
    the machine stood in the way (data or a GPU it lacks); else failed."""
    if all(c.status == "passed" for c in checks):
        return "passed"
    if all(c.status in ("passed", "environment") for c in checks):
        return "environment"
    return "failed"


def _fit(lines: list[str], budget: int) -> str:
    text = "".join(f"{line}\n" for line in lines)
    if len(text.encode("utf-8")) <= budget:
        return text
    room = budget - len(_TRUNCATED.encode("utf-8"))
    if room < 0:
        return ""
    kept: list[str] = []
    for line in lines:
        size = len(line.encode("utf-8")) + 1
        if size > room:
            break
        kept.append(line)
        room -= size
    return "".join(f"{line}\n" for line in kept) + _TRUNCATED


def _clip(text: str, most: int = _LONGEST_TEXT) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _number(value: float) -> str:
    """As JavaScript prints a number (the reporter's `${totalPoints}`): 3, 2.5."""
    return str(_json_number(value))


def _json_number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
