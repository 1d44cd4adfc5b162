"""A graded batch written out for people and LMSs: the gradebook CSV (and a
Canvas-importable variant), per-student feedback in Markdown and HTML, and a
Gradescope `results.json` per submission. Rendering only: no grading here.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import jinja2

from autograder.batch import BatchItem, count_statuses
from autograder.results import SubmissionResult
from autograder.safe_text import csv_cell, markdown_code, markdown_text, plain_text


class _MarkdownMarkup(str):
    """Markdown a filter already made safe (a code span): the template does not escape it again."""


def _html_value(value: Any) -> Any:
    """Every `{{ }}` of an HTML template: control characters made visible, then
    autoescaped. Even a `Markup` value is escaped again: no template can let text through."""
    return value if isinstance(value, int | float) else plain_text(str(value))


def _markdown_value(value: Any) -> Any:
    """Every `{{ }}` of a Markdown template: escaped unless a filter (`code`) made it."""
    if isinstance(value, _MarkdownMarkup | int | float):
        return value
    return markdown_text(str(value))


def _environment(kind: str) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("autograder", "templates"),
        autoescape=kind == "html",  # every template of this environment is `*.html.j2`
        finalize=_html_value if kind == "html" else _markdown_value,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    if kind == "md":
        environment.filters["code"] = lambda text: _MarkdownMarkup(markdown_code(str(text)))
    return environment


_TEMPLATES = {"html": _environment("html"), "md": _environment("md")}


def write_batch_reports(
    items: Sequence[BatchItem],
    out: Path,
    *,
    title: str,
    titles: Mapping[str, str] | None = None,
    canvas_ids: Mapping[str, int] | None = None,
) -> list[str]:
    """Everything under `out`, rewritten from all results (cached ones included).
    `title` names the batch; `titles` (assignment -> title) each notebook's feedback
    and Canvas column, `canvas_ids` (assignment -> Canvas's id) the Canvas columns.
    Returns the students the Canvas file has no id for (see `write_canvas_gradebook`)."""
    write_gradebook(items, out / "gradebook.csv")
    unmatched = write_canvas_gradebook(items, out / "gradebook-canvas.csv", titles=titles, canvas_ids=canvas_ids)
    write_summary_page(items, out / "summary.html", title=title)
    for item in items:
        student = item.entry.name or item.entry.student
        curves = [
            {"title": name, "png": _png(_curve_figure(name, values)), "file": f"{item.entry.label}.curve{n}.png"}
            for n, (name, values) in enumerate(item.result.curves.items())
        ]
        for curve in curves:
            target = out / "feedback" / curve["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(curve["png"]))
        own = (titles or {}).get(item.result.assignment or "", title)
        context = {
            "result": item.result,
            "student": student,
            "title": own,
            "curves": curves,
            "duplicates": item.entry.duplicates,  # the student's other notebooks of it: not counted
        }
        for kind in ("md", "html"):
            target = out / "feedback" / f"{item.entry.label}.{kind}"
            target.parent.mkdir(parents=True, exist_ok=True)
            page = _TEMPLATES[kind].get_template(f"feedback.{kind}.j2").render(context)
            target.write_text(page, encoding="utf-8")
        target = out / "gradescope" / item.entry.label / "results.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(gradescope_results(item.result), indent=2), encoding="utf-8")
    return unmatched


def write_summary_page(items: Sequence[BatchItem], target: Path, *, title: str) -> None:
    """A self-contained HTML page (plots embedded as PNG, no script, nothing fetched)."""
    graded = [item for item in items if item.result.status == "graded"]
    problems = [
        {"student": item.entry.name or item.entry.student, "notebook": item.entry.path.name, "what": what}
        for item in items
        for what in _problems(item.result)
    ]
    timed = sorted(items, key=lambda item: item.result.timings.get("total_s", 0.0), reverse=True)[:10]
    context = {
        "title": title,
        "counts": {
            "total": len(items),
            **count_statuses(items),
        },
        "mean": sum(i.result.score for i in graded) / len(graded) if graded else 0.0,
        "max_score": max((i.result.max_score for i in graded), default=0.0),
        "mixed": _several_maxima([i.result for i in graded]),
        "mean_percent": sum(_percent(i.result) for i in graded) / len(graded) if graded else 0.0,
        "plots": summary_plots(items),
        "problems": problems,
        "slowest": [
            {
                "student": i.entry.name or i.entry.student,
                "notebook": i.entry.path.name,
                "seconds": i.result.timings.get("total_s", 0.0),
            }
            for i in timed
        ],
    }
    target.write_text(_TEMPLATES["html"].get_template("summary.html.j2").render(context), encoding="utf-8")


def _several_maxima(results: Sequence[SubmissionResult]) -> bool:
    """Several assignments in one batch: scores are compared as shares of each one's maximum."""
    return len({r.max_score for r in results}) > 1


def _percent(result: SubmissionResult) -> float:
    return 100 * result.score / result.max_score if result.max_score else 0.0


def summary_plots(items: Sequence[BatchItem]) -> list[dict[str, str]]:
    """Score histogram, pass rate per question, slowest submissions; PNG as base64."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    graded = [item.result for item in items if item.result.status == "graded"]
    plots = []
    mixed = _several_maxima(graded)
    figure, axes = pyplot.subplots(figsize=(6, 3.5))
    scores = [_percent(r) if mixed else r.score for r in graded]
    axes.hist(scores, bins=min(20, max(5, len(graded))), color="#4472c4")
    axes.set_xlabel("% of the maximum" if mixed else "score")
    axes.set_ylabel("submissions")
    plots.append({"caption": "Score histogram", "png": _png(figure)})
    several = len({r.assignment for r in graded}) > 1
    keys = list(dict.fromkeys((r.assignment, q.question) for r in graded for q in r.questions))
    marks: dict[tuple[str | None, str], list[bool]] = {key: [] for key in keys}
    for r in graded:
        for q in r.questions:
            marks[(r.assignment, q.question)].append(q.score == q.max_score)
    figure, axes = pyplot.subplots(figsize=(6 if len(keys) <= 12 else 10, 3.5 if not several else 4.5))
    labels = [f"{assignment}:{question}" if several else question for assignment, question in keys]
    axes.bar(labels, [100 * sum(marks[key]) / len(marks[key]) for key in keys], color="#70ad47")
    axes.set_ylim(0, 100)
    axes.set_ylabel("% with full marks")
    if several or len(keys) > 12:
        axes.tick_params(axis="x", labelrotation=90, labelsize=7)
    plots.append({"caption": "Pass rate per question", "png": _png(figure)})
    slowest = sorted(items, key=lambda i: i.result.timings.get("total_s", 0.0), reverse=True)[:10]
    figure, axes = pyplot.subplots(figsize=(6, 3.5))
    axes.barh(
        [i.entry.label[:30] for i in slowest][::-1],
        [i.result.timings.get("total_s", 0.0) for i in slowest][::-1],
        color="#ed7d31",
    )
    axes.set_xlabel("seconds")
    plots.append({"caption": "Slowest submissions", "png": _png(figure)})
    return plots


def _curve_figure(title: str, values: list[float]) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 2.6))
    axes = figure.add_subplot()
    axes.plot(range(1, len(values) + 1), values)
    axes.set_title(title)
    axes.set_xlabel("recorded step")
    figure.tight_layout()
    return figure


def _png(figure: Any) -> str:
    from matplotlib import pyplot

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80)
    pyplot.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _problems(result: SubmissionResult) -> list[str]:
    if result.status != "graded":
        return [f"{result.status}: {result.reason}"]
    execution = result.execution
    if execution is None:
        return []
    return [f"cell {e.cell_index}: {e.kind} ({e.exception})" for e in execution.cell_errors if e.kind != "error"] + (
        [f"notebook {execution.status}"] if execution.status != "completed" else []
    )


def write_gradebook(items: Sequence[BatchItem], target: Path) -> None:
    """One row per student (all of the student's notebooks together): a column per
    question, the total, and the status of the worst notebook."""
    assignments = {item.result.assignment for item in items if item.result.assignment}

    def column(result: SubmissionResult, question: str) -> str:
        return f"{result.assignment}:{question}" if len(assignments) > 1 else question

    columns = list(dict.fromkeys(column(i.result, q.question) for i in items for q in i.result.questions))
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = _SpreadsheetSafeWriter(handle)
        writer.writerow(
            [
                "student",
                "name",
                "lms_id",
                "notebooks",
                "assignments",
                "chosen_by",
                "duplicates",
                *columns,
                "score",
                "max_score",
                "bonus",
                "status",
                "reason",
            ]
        )
        for student, mine in _by_student(items).items():
            results = [item.result for item in mine]
            scores: dict[str, float] = {}
            for result in results:
                for question in result.questions:
                    key = column(result, question.question)
                    scores[key] = scores.get(key, 0.0) + question.score
            failed = [item for item in mine if item.result.status != "graded"]
            reasons = [f"{i.entry.path.name}: {i.result.reason}" for i in failed]
            reasons += [f"{item.entry.path.name}: {note}" for item in mine if (note := _environment_note(item.result))]
            writer.writerow(
                [
                    student,
                    mine[0].entry.name,
                    mine[0].entry.lms_id,
                    "; ".join(item.entry.path.name for item in mine),
                    "; ".join(dict.fromkeys(r.assignment for r in results if r.assignment)),
                    "; ".join(f"{r.assignment}: {r.assignment_chosen_by}" for r in results if r.assignment),
                    "; ".join(f"duplicate: {path}" for item in mine for path in item.entry.duplicates),
                    *(f"{scores[c]:g}" if c in scores else "" for c in columns),
                    f"{sum(r.score for r in results):g}",
                    f"{sum(r.max_score for r in results):g}",
                    f"{sum(r.bonus for r in results):g}",
                    failed[0].result.status if failed else "graded",
                    "; ".join(reasons),
                ]
            )


def _environment_note(result: SubmissionResult) -> str:
    """Questions the grading machine could not grade (no GPU): their points are
    not the student's mistake, and a regrade on a GPU gives them."""
    questions = list(dict.fromkeys(c.question for c in result.checks if c.status == "environment"))
    if not questions:
        return ""
    return f"{', '.join(questions)} not gradable on this machine (it has no GPU): regrade on a GPU"


CANVAS_IDENTITY_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


def write_canvas_gradebook(
    items: Sequence[BatchItem],
    target: Path,
    *,
    titles: Mapping[str, str] | None = None,
    canvas_ids: Mapping[str, int] | None = None,
) -> list[str]:
    """The layout Canvas's gradebook importer reads: the identity columns, then
    one column per assignment, `Title (canvas id)` where the assignment has a
    `canvas_id` (Canvas then matches the id), else its exact title (Canvas
    matches the title, or makes a new assignment); a second row `Points
    Possible` with the identity cells empty; then a row per student, matched on
    ID (Canvas's user id), else SIS User ID, else SIS Login ID, else the name.
    Returns the students with none of those ids: Canvas can match only their name."""
    titles, canvas_ids = titles or {}, canvas_ids or {}
    assignments = sorted({item.result.assignment for item in items if item.result.assignment})

    def header(assignment: str) -> str:
        title = titles.get(assignment) or assignment
        return f"{title} ({canvas_ids[assignment]})" if canvas_ids.get(assignment) else title

    possible = {
        name: max(
            (i.result.max_score for i in items if i.result.assignment == name and i.result.status == "graded"),
            default=None,
        )
        for name in assignments
    }
    unmatched = []
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = _SpreadsheetSafeWriter(handle)
        writer.writerow([*CANVAS_IDENTITY_COLUMNS, *(header(name) for name in assignments)])
        writer.writerow(
            [
                "Points Possible",
                "",
                "",
                "",
                "",
                *("" if possible[n] is None else f"{possible[n]:g}" for n in assignments),
            ]
        )
        for student, mine in _by_student(items).items():
            entry = mine[0].entry
            scores: dict[str, str] = {}
            for item in mine:  # one counted notebook per assignment (selection): never summed
                if item.result.status == "graded" and item.result.assignment:
                    scores.setdefault(item.result.assignment, f"{item.result.score + item.result.bonus:g}")
            ids = (entry.lms_id, entry.sis_user_id, entry.sis_login_id)
            if not any(ids):
                unmatched.append(entry.name or student)
            writer.writerow([entry.name or student, *ids, entry.section, *(scores.get(n, "") for n in assignments)])
    return unmatched


class _SpreadsheetSafeWriter:
    """`csv.writer` whose every cell goes through `csv_cell`: names, reasons and
    file names cannot become formulas; numbers (scores, ids) are written as they are."""

    def __init__(self, handle: TextIO) -> None:
        self._writer = csv.writer(handle)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([csv_cell(str(cell)) for cell in row])


def _by_student(items: Sequence[BatchItem]) -> dict[str, list[BatchItem]]:
    grouped: dict[str, list[BatchItem]] = {}
    for item in items:
        grouped.setdefault(item.entry.student, []).append(item)
    return grouped


def gradescope_results(result: SubmissionResult) -> dict[str, Any]:
    """Gradescope's autograder `results.json`; hidden checks show after grades are published.
    Every name and output is plain text (`"text"`, never Markdown, HTML or ANSI) with
    control characters made visible: a message cannot format, script or draw anything."""
    tests = [
        {
            "name": plain_text(f"{check.question}: {check.name}", one_line=True),
            "name_format": "text",
            "score": check.score,
            "max_score": check.max_score,
            "output": plain_text(check.message),
            "output_format": "text",
            "visibility": "visible" if check.visibility == "public" else "after_published",
        }
        for check in result.checks
    ]
    payload: dict[str, Any] = {
        "score": result.score + result.bonus,
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "tests": tests,
    }
    if result.status != "graded":
        payload["output"] = plain_text(f"{result.status}: {result.reason}")
    return payload
