"""What `autograder grade` does, as functions a script calls without the CLI:
`grade_one` (one notebook, its assignment told as a batch tells it),
`notebooks_in` (the notebooks a list of files and folders names), and
`grade_batch_into` (a batch into a results folder, with its reports).

None of them prints: what a person should be told comes back through
callbacks (`on_assignment`, `on_warning`, `on_chosen`, `on_start`,
`on_result`), so the CLI draws its progress bar and messages, and a script
may ignore them.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from autograder.batch import BatchItem, count_statuses, default_workers, grade_batch
from autograder.course import Course
from autograder.errors import UsageError
from autograder.exports import write_batch_reports
from autograder.grading import GradingOptions, grade_notebook
from autograder.results import SubmissionResult
from autograder.selection import AssignmentNames, Selection, choose, recognise, refused
from autograder.submissions import collect, read_roster

OnAssignment = Callable[[Path, str, str], None]  # (notebook, assignment, how it was told)


@dataclass(frozen=True)
class BatchSummary:
    """A batch graded into `out`: every result (in the order given), and what the reports left unsaid."""

    items: tuple[BatchItem, ...]
    out: Path
    workers: int
    seconds: float  # grading alone, after collecting and choosing
    unmatched: tuple[str, ...] = ()  # students the Canvas gradebook has no id for (it matches them by name)

    @property
    def counts(self) -> dict[str, int]:
        """How many results have each status (graded, rejected, error)."""
        return count_statuses(self.items)

    @property
    def cached(self) -> int:
        """How many results were already in `out` and reused."""
        return sum(item.cached for item in self.items)


def grade_one(
    notebook: Path,
    *,
    course: Course,
    assignments: Sequence[str] = (),
    options: GradingOptions | None = None,
    student: str = "",
    on_assignment: OnAssignment | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> SubmissionResult:
    """Grade one notebook file and return its result, recorded as `student`'s.

    Unlike `grade_notebook`, the assignment is told as a batch tells it
    (`selection.recognise`): one name in `assignments` grades it as that one
    (`on_warning` says when the notebook names another); several limit
    recognition to them, and a notebook of another assignment is rejected
    unread; none recognises it from its metadata and file name, and a
    notebook whose two disagree is rejected with the reason. With
    `options.container`, the image's course recognises it instead.

    Raises `UnknownAssignmentError` (a `UsageError`) for a name the course
    lacks, before any work; a bad submission is never raised, it is a
    rejected or error result.
    """
    options = options or GradingOptions()
    if options.container is not None:  # the image's course decides, and may hold other assignments
        asked = tuple(dict.fromkeys(assignments))
        result = grade_notebook(
            notebook,
            course=course,
            assignment_name=asked[0] if len(asked) == 1 else None,
            options=options,
            on_assignment=on_assignment,
        )
        return dataclasses.replace(result, student=student)
    assignments = _known(course, assignments)
    found = recognise(notebook, names=AssignmentNames(course), asked=assignments)
    if found.warning and on_warning is not None:
        on_warning(found.warning)
    if found.refusal:
        if on_warning is not None:
            on_warning(f"{notebook.name}: not graded: {found.refusal}")
        return refused(notebook, found.refusal, student=student)
    if found.other:
        reason = f"it is assignment {found.assignment} ({found.how}), not one of {', '.join(assignments)} (-a)"
        return refused(notebook, reason, student=student)
    if found.assignment is None:  # nothing tells: grading says why (not a notebook, or pass -a)
        result = grade_notebook(notebook, course=course, options=options, on_assignment=on_assignment)
        return dataclasses.replace(result, student=student)
    how = found.how
    result = grade_notebook(  # says the assignment once the file is read as a notebook
        notebook,
        course=course,
        assignment_name=found.assignment,
        options=options,
        on_assignment=None if on_assignment is None else lambda path, name, _how: on_assignment(path, name, how),
    )
    return dataclasses.replace(result, student=student, assignment_chosen_by=how)


def notebooks_in(paths: Sequence[Path], *, course: Course) -> list[tuple[Path, str]]:
    """Each notebook the paths name, with its student: a file as given (no
    student), a folder its notebooks (a student's folder, e.g. the course's
    `assignments_04/`, is that student's; a class folder each student's).

    Raises `UsageError` for a folder with no notebook in it.
    """
    found: list[tuple[Path, str]] = []
    for path in paths:
        if not path.is_dir():
            found.append((path, ""))
            continue
        names = AssignmentNames(course)
        entries = collect([path], unpack_to=Path(tempfile.gettempdir()), names_assignment=names)  # nothing unpacked
        if not entries:
            raise UsageError(f"{path}: no notebooks in this folder")
        found += [(entry.path, entry.student) for entry in entries]
    return found


def grade_batch_into(
    paths: Sequence[Path],
    *,
    out: Path,
    course: Course,
    assignments: Sequence[str] = (),
    workers: int | None = None,
    force: bool = False,
    only_student: str | None = None,
    roster: Path | None = None,
    options: GradingOptions | None = None,
    scheduler: str | None = None,
    on_chosen: Callable[[Selection], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[BatchItem], None] | None = None,
) -> BatchSummary:
    """Grade the files, folders and zips under `paths` into the results folder
    `out`, then write every report there (gradebooks, feedback, Gradescope
    files, summary.html).

    Submissions are staged under `out/inputs`; one notebook per student and
    assignment counts (`selection.choose`; `assignments` as for `grade_one`);
    `only_student` keeps the submissions whose student, file or roster name it
    is. What is already graded in `out` is reused unless `force`. `workers`
    (default one per core) and `scheduler` are `batch.grade_batch`'s.
    `on_chosen(selection)` is called once before grading, with what choosing
    set aside; `on_start(total, done)` once as grading starts (`done`: how
    many need no grading, reused or refused) and `on_result(item)` once per
    submission, for a progress bar.

    Raises `UsageError` for a path that does not exist, a roster without its
    columns, an `only_student` no submission matches, two submissions that
    would share a label, or an assignment name the course
    lacks (`UnknownAssignmentError`; with `options.container` the image's
    course decides). A submission that fails is a result, never raised.
    """
    options = options or GradingOptions()
    assignments = tuple(dict.fromkeys(assignments)) if options.container else _known(course, assignments)
    names = AssignmentNames(course)
    entries = collect(
        paths, unpack_to=out / "inputs", roster=read_roster(roster) if roster else None, names_assignment=names
    )
    if only_student is not None:
        entries = [e for e in entries if only_student in (e.student, e.path.name, e.name)]
        if not entries:
            raise UsageError(f"no submission of {only_student!r} under the given paths")
    chosen = choose(entries, course=course, asked=assignments)
    if on_chosen is not None:
        on_chosen(chosen)
    workers = workers or default_workers()
    started = time.monotonic()
    items = grade_batch(
        chosen.entries,
        course=course,
        out=out,
        workers=workers,
        force=force,
        options=options,
        on_start=on_start,
        on_result=on_result,
        scheduler=scheduler,
    )
    seconds = time.monotonic() - started
    graded_as = sorted({item.result.assignment or "" for item in items} - {""})
    titles = {name: course.get(name).config.title or name for name in graded_as}
    canvas_ids = {name: course.get(name).config.canvas_id for name in graded_as}
    # a batch of several assignments (a course repository copy) is named after all of them
    unmatched = write_batch_reports(
        items, out, title=", ".join(titles.values()) or "Score", titles=titles, canvas_ids=canvas_ids
    )
    return BatchSummary(tuple(items), out, workers, seconds, tuple(unmatched))


def _known(course: Course, assignments: Sequence[str]) -> tuple[str, ...]:
    """The names once each, every one the course's: an unknown name is a usage error before any work."""
    names = tuple(dict.fromkeys(assignments))
    for name in names:
        course.get(name)
    return names
