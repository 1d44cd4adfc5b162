"""Rendering results for people: the instructor's table and the student's self-check.

Everything about how a result looks lives here; grading code never prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autograder.batch import BatchItem
from autograder.results import CheckOutcome, SubmissionResult

_MARKS = {
    "passed": "[green]✔[/]",
    "failed": "[red]✘[/]",
    "error": "[magenta]![/]",
    "not-run": "[yellow]-[/]",
    "environment": "[cyan]⚙[/]",
}


def render_grade(result: SubmissionResult, console: Console) -> None:
    """The full grading view: one row per question, failures with their reasons."""
    if result.status != "graded":
        console.print(f"[bold]{escape(result.submission)}[/]: [red]{result.status}[/]: {escape(result.reason)}")
        return
    table = Table(title=f"{escape(result.submission)} [dim]({result.assignment})[/]", title_justify="left")
    table.add_column("question")
    table.add_column("score", justify="right")
    table.add_column("what went wrong", overflow="fold")
    for question in result.questions:
        failures = [c for c in result.checks if c.question == question.question and c.status != "passed"]
        points = f"{question.score:g}/{question.max_score:g}"
        if question.bonus_max:
            points += f" (+{question.bonus:g}/{question.bonus_max:g} bonus)"
        table.add_row(f"{question.question} {escape(question.title)}", points, _reasons(failures))
    console.print(table)
    if result.answers:
        marks = "  ".join(
            f"{q} {'[green]yes[/]' if present else '[yellow]no[/]'}" for q, present in result.answers.items()
        )
        console.print(f"written answers (not scored, for a mentor to read): {marks}")
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
        console.print(f"[bold]{escape(student)}[/]: {score:g}/{most:g}{extra}  [dim]({'; '.join(parts)})[/]")


def render_self_check(result: SubmissionResult, console: Console) -> None:
    """The student's view: public checks only, pass or fail per question, with a hint."""
    if result.status != "graded":
        console.print(f"[red]Could not check {escape(result.submission)}[/]: {escape(result.reason)}")
        return
    for question in result.questions:
        mine = [c for c in result.checks if c.question == question.question and c.visibility == "public"]
        if not mine:
            continue
        failing = [c for c in mine if c.status != "passed"]
        mark = _MARKS["failed"] if failing else _MARKS["passed"]
        console.print(f"{mark} {question.question} {escape(question.title)}")
        for check in failing:
            console.print(f"    [dim]hint:[/] {escape(check.message or 'not right yet')}")
    _render_execution(result, console)
    public = [c for c in result.checks if c.visibility == "public"]
    passed = sum(c.status == "passed" for c in public)
    console.print(
        f"[bold]{passed}/{len(public)} public checks pass.[/] "
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
            escape(item.entry.name or item.entry.student), escape(item.entry.path.name), score, escape(status)
        )
    console.print(table)


def _reasons(failures: list[CheckOutcome]) -> str:
    lines = [f"{_MARKS.get(c.status, '?')} {escape(c.message or c.name)}" for c in failures]
    return "\n".join(dict.fromkeys(lines))


def _render_execution(result: SubmissionResult, console: Console) -> None:
    execution = result.execution
    if execution is None:
        return
    for error in execution.cell_errors:
        console.print(
            f"[yellow]cell {error.cell_index}[/] {error.kind}: {escape(error.exception)}: {escape(error.message[:200])}"
        )
    if execution.status != "completed":
        console.print(
            f"[red]notebook {execution.status}[/] after {execution.cells_run}/{execution.code_cells} code cells"
        )
