"""A graded batch written out for people and LMSs: the gradebook CSV (and a
Canvas-importable variant), per-student feedback in Markdown and HTML, and a
Gradescope `results.json` per submission. Rendering only: no grading here.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from autograder.batch import BatchItem
from autograder.results import SubmissionResult

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("autograder", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def write_batch_reports(items: Sequence[BatchItem], out: Path, *, title: str) -> None:
    """Everything under `out`, rewritten from all results (cached ones included)."""
    write_gradebook(items, out / "gradebook.csv")
    write_canvas_gradebook(items, out / "gradebook-canvas.csv", title=title)
    for item in items:
        student = item.entry.name or item.entry.student
        context = {"result": item.result, "student": student, "title": title}
        for kind in ("md", "html"):
            target = out / "feedback" / f"{item.entry.label}.{kind}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_TEMPLATES.get_template(f"feedback.{kind}.j2").render(context), encoding="utf-8")
        target = out / "gradescope" / item.entry.label / "results.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(gradescope_results(item.result), indent=2), encoding="utf-8")


def write_gradebook(items: Sequence[BatchItem], target: Path) -> None:
    """One row per graded notebook: student, a column per question, total, status."""
    questions = list(dict.fromkeys(q.question for item in items for q in item.result.questions))
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "student",
                "name",
                "lms_id",
                "submission",
                "assignment",
                *questions,
                "score",
                "max_score",
                "bonus",
                "status",
                "reason",
            ]
        )
        for item in items:
            result = item.result
            scores = {q.question: f"{q.score:g}" for q in result.questions}
            writer.writerow(
                [
                    item.entry.student,
                    item.entry.name,
                    item.entry.lms_id,
                    item.entry.path.name,
                    result.assignment or "",
                    *(scores.get(q, "") for q in questions),
                    f"{result.score:g}",
                    f"{result.max_score:g}",
                    f"{result.bonus:g}",
                    result.status,
                    result.reason,
                ]
            )


def write_canvas_gradebook(items: Sequence[BatchItem], target: Path, *, title: str) -> None:
    """Canvas's gradebook import layout: Student, ID, SIS User ID, Section, then the assignment column."""
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Student", "ID", "SIS User ID", "Section", title])
        for item in items:
            score = f"{item.result.score + item.result.bonus:g}" if item.result.status == "graded" else ""
            writer.writerow([item.entry.name or item.entry.student, item.entry.lms_id, "", "", score])


def gradescope_results(result: SubmissionResult) -> dict[str, Any]:
    """Gradescope's autograder `results.json`; hidden checks show after grades are published."""
    tests = [
        {
            "name": f"{check.question}: {check.name}",
            "score": check.score,
            "max_score": check.max_score,
            "output": check.message,
            "visibility": "visible" if check.visibility == "public" else "after_published",
        }
        for check in result.checks
    ]
    payload: dict[str, Any] = {"score": result.score + result.bonus, "tests": tests}
    if result.status != "graded":
        payload["output"] = f"{result.status}: {result.reason}"
    return payload
