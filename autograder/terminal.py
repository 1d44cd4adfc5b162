"""Rendering results for people: the instructor's table and the student's self-check.

Everything about how a result looks in a terminal lives here; grading code never prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autograder.batch import BatchItem
from autograder.results import CheckOutcome, SubmissionResult
from autograder.safe_text import plain_text
from autograder.scoring import question_verdicts

# Student-derived strings (file names, names, reasons, messages) enter the terminal
# only as `Text` made by `_said` or `_lines`: never parsed as rich markup or emoji,
# and with control characters (escape sequences, bidi overrides) made visible.
_MARKS = {
    "passed": ("✔", "green"),
    "failed": ("✘", "red"),
    "error": ("!", "magenta"),
    "not-run": ("-", "yellow"),
    "environment": ("⚙", "cyan"),
}


def _said(text: str, style: str = "") -> Text:
    """One line of untrusted text, shown as it is."""
    return Text(plain_text(text, one_line=True), style=style)


def _lines(text: str) -> Text:
    """Untrusted text that may keep its line breaks (inside a table cell)."""
    return Text(plain_text(text))


def render_grade(result: SubmissionResult, console: Console) -> None:
    """The full grading view: one row per question, failures with their reasons."""
    if result.status != "graded":
        console.print(
            Text.assemble(_said(result.submission, "bold"), ": ", (result.status, "red"), ": ", _said(result.reason))
        )
        return
    title = Text.assemble(_said(result.submission), _said(f" ({result.assignment})", "dim"))
    table = Table(title=title, title_justify="left")
    table.add_column("question")
    table.add_column("score", justify="right")
    table.add_column("what went wrong", overflow="fold")
    for question in result.questions:
        failures = [c for c in result.checks if c.question == question.question and c.status != "passed"]
        points = f"{question.score:g}/{question.max_score:g}"
        if question.bonus_max:
            points += f" (+{question.bonus:g}/{question.bonus_max:g} bonus)"
        table.add_row(_said(f"{question.question} {question.title}"), Text(points), _reasons(failures))
    console.print(table)
    if result.answers:
        marks = Text("written answers (not scored, for a mentor to read): ")
        for index, (answered, present) in enumerate(result.answers.items()):
            marks.append_text(Text.assemble("  " if index else "", _said(answered), " "))
            marks.append(*(("yes", "green") if present else ("no", "yellow")))
        console.print(marks)
    _render_execution(result, console)
    bonus = f"  bonus {result.bonus:g}/{result.bonus_max:g}" if result.bonus_max else ""
    seconds = result.timings.get("total_s", 0.0)
    console.print(f"[bold]score {result.score:g}/{result.max_score:g}[/]{bonus}  [dim]({seconds:.1f} s)[/]")


def render_students(results: Sequence[SubmissionResult], console: Console) -> None:
    """One line per student covering all of that student's notebooks."""
    by_student: dict[str, list[SubmissionResult]] = {}
    for result in results:
        by_student.setdefault(result.student, []).append(result)
    for student, mine in by_student.items():
        parts = [
            f"{r.assignment or Path(r.submission).name} {r.score:g}/{r.max_score:g}"
            if r.status == "graded"
            else f"{Path(r.submission).name} {r.status}"
            for r in mine
        ]
        score, most = sum(r.score for r in mine), sum(r.max_score for r in mine)
        bonus = sum(r.bonus for r in mine)
        extra = f" (+{bonus:g} bonus)" if bonus else ""
        console.print(
            Text.assemble(
                _said(student, "bold"), f": {score:g}/{most:g}{extra}  ", _said(f"({'; '.join(parts)})", "dim")
            )
        )


def render_self_check(result: SubmissionResult, console: Console) -> None:
    """The student's view: public checks only, pass or fail per question, with a hint."""
    if result.status != "graded":
        console.print(
            Text.assemble(("Could not check ", "red"), _said(result.submission, "red"), ": ", _said(result.reason))
        )
        return
    titles = {question.question: question.title for question in result.questions}
    for line in question_verdicts(result.checks, titles):
        console.print(Text.assemble(_MARKS[line.verdict], " ", _said(f"{line.question} {line.title}")))
        for hint in line.hints:
            console.print(Text.assemble("    ", ("hint:", "dim"), " ", _said(hint)))
    _render_execution(result, console)
    public = [c for c in result.checks if c.visibility == "public"]
    passed = sum(c.status == "passed" for c in public)
    machine = sum(c.status == "environment" for c in public)
    unchecked = f" ({machine} could not be checked on this machine)" if machine else ""
    console.print(
        f"[bold]{passed}/{len(public)} public checks pass{unchecked}.[/] "
        "Grading also runs hidden checks on new inputs, so passing here is not a final grade."
    )


def render_batch(items: Sequence[BatchItem], console: Console) -> None:
    """One row per submission: who, which notebook, the score or why there is none."""
    table = Table(title="batch", title_justify="left")
    for column in ("student", "notebook", "score", "status"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for item in items:
        result = item.result
        score = f"{result.score:g}/{result.max_score:g}" if result.status == "graded" else ""
        status = result.status if result.status == "graded" else f"{result.status}: {result.reason[:80]}"
        table.add_row(
            _said(item.entry.name or item.entry.student), _said(item.entry.path.name), Text(score), _said(status)
        )
    console.print(table)


def _reasons(failures: list[CheckOutcome]) -> Text:
    lines = dict.fromkeys((c.status, c.message or c.name) for c in failures)
    return Text("\n").join(
        Text.assemble(_MARKS.get(status, ("?", "")), " ", _lines(message)) for status, message in lines
    )


def _render_execution(result: SubmissionResult, console: Console) -> None:
    execution = result.execution
    if execution is None:
        return
    for error in execution.cell_errors:
        console.print(
            Text.assemble(
                (f"cell {error.cell_index}", "yellow"),
                f" {error.kind}: ",
                _said(error.exception),
                ": ",
                _said(error.message[:200]),
            )
        )
    if execution.status != "completed":
        console.print(
            f"[red]notebook {execution.status}[/] after {execution.cells_run}/{execution.code_cells} code cells"
        )
