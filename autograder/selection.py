"""Which assignment each notebook of a batch is, and which one notebook per
student and assignment counts.

The assignment: a file name that is (or starts with) an assignment's name or
alias says it, and so does the notebook's metadata; when both speak and
disagree the notebook is refused, with the reason, rather than graded as
either. One `-a` wins over both (with a warning when the notebook says
otherwise); several `-a` limit recognition to those, and the notebooks of other
assignments are left out.

What counts: of a student's notebooks of one assignment, those whose file
name is the assignment's name or alias come first (before copies such as
`02_tensors (copy).ipynb`, before notebooks told by their metadata only);
among those, the latest: the LMS's submission order where the export has one
(Canvas), else the file's modification time. Never the best score. The
others are the counted one's `duplicates`: listed, never graded or summed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from autograder.course import Course
from autograder.errors import NotANotebookError
from autograder.intake import read_submission
from autograder.results import SubmissionResult
from autograder.submissions import Entry, own_file_name
from autograder.ungraded import ungraded_result


@dataclass(frozen=True)
class Recognition:
    """Which assignment a notebook is, how that was told, or why it is not graded."""

    assignment: str | None  # None: nothing tells (grading then says why it cannot)
    how: str = ""
    refusal: str = ""  # its file name and its metadata name different assignments
    other: bool = False  # an assignment the `-a` given do not include: left out
    warning: str = ""  # `-a` overrode what the notebook says
    rank: int = 0  # 2: the file name is the assignment's; 1: it starts with it; 0: neither


@dataclass(frozen=True)
class Selection:
    """A batch after choosing: what to grade, and what was set aside."""

    entries: tuple[Entry, ...]  # one per student and assignment, plus the refused and the unrecognised
    left_out: tuple[Entry, ...] = ()  # notebooks of assignments the `-a` given do not include
    warnings: tuple[str, ...] = ()


class AssignmentNames:
    """The course's assignment names and aliases, read once, as a file name
    would spell them."""

    def __init__(self, course: Course) -> None:
        self.course_names = tuple(course.names())
        self._keys = sorted(
            ((_normalise(key), name) for name in self.course_names for key in {name, *course.get(name).config.aliases}),
            key=lambda pair: -len(pair[0]),  # the longest first: `project_04_extra` before `project`
        )

    def __call__(self, file_name: str) -> str | None:
        match = self.match(file_name)
        return match[0] if match else None

    def match(self, file_name: str) -> tuple[str, bool] | None:
        """The assignment this file name names, and whether exactly (not only its start)."""
        stem = _normalise(Path(own_file_name(file_name)).stem)
        for key, name in self._keys:
            if stem == key:
                return name, True
        for key, name in self._keys:
            if stem.startswith(key):
                return name, False
        return None


def recognise(path: Path, *, names: AssignmentNames, asked: Sequence[str] = ()) -> Recognition:
    """Which assignment the notebook at `path` is (see the module's docstring)."""
    named = names.match(path.name)
    tagged = _tagged(path, names.course_names)
    if len(asked) == 1:
        chosen = asked[0]
        says = [f"its {what} says {value}" for what, value in _claims(named, tagged) if value != chosen]
        warning = f"{path}: graded as {chosen}, as asked with -a, though {' and '.join(says)}" if says else ""
        how = "as asked with -a" + (f" ({'; '.join(says)})" if says else "")
        return Recognition(chosen, how, warning=warning, rank=_rank(named, chosen))
    if named is not None and tagged is not None and named[0] != tagged:
        refusal = (
            f"its file name {path.name!r} is assignment {named[0]}'s but its metadata says {tagged}: "
            "rename the file to the assignment it answers, or pass -a NAME"
        )
        return Recognition(None, refusal=refusal)
    if named is not None:
        how = f"from the file name {path.name!r}" + (" and the notebook's metadata" if tagged else "")
        found = named[0]
    elif tagged is not None:
        how, found = "from the notebook's metadata", tagged
    else:
        return Recognition(None)
    return Recognition(found, how, other=bool(asked) and found not in asked, rank=_rank(named, found))


def choose(entries: Sequence[Entry], *, course: Course, asked: Sequence[str] = ()) -> Selection:
    """Each entry's assignment, then one counted notebook per student and
    assignment, the others its duplicates (see the module's docstring)."""
    names = AssignmentNames(course)
    chosen: list[Entry] = []
    left_out: list[Entry] = []
    warnings: list[str] = []
    groups: dict[tuple[str, str], list[_Candidate]] = {}
    for entry in entries:
        if entry.refusal:  # refused at staging (a link, a FIFO): a row with that reason, never counted
            chosen.append(entry)
            continue
        found = recognise(entry.path, names=names, asked=asked)
        if found.warning:
            warnings.append(found.warning)
        if found.other:
            left_out.append(entry)
        elif found.assignment is None:
            chosen.append(dataclasses.replace(entry, refusal=found.refusal))
        else:
            groups.setdefault((entry.student, found.assignment), []).append((entry, found))
    for (_, assignment), candidates in groups.items():
        counted, counted_how = max(candidates, key=_precedence(candidates))
        duplicates = tuple(entry.within for entry, _ in candidates if entry is not counted)  # not the grader's paths
        chosen.append(
            dataclasses.replace(counted, assignment=assignment, chosen_by=counted_how.how, duplicates=duplicates)
        )
    position = {(e.student, e.within, e.path): index for index, e in enumerate(entries)}
    chosen.sort(key=lambda e: position[(e.student, e.within, e.path)])  # the order they were given in
    return Selection(tuple(chosen), tuple(left_out), tuple(warnings))


_Candidate = tuple[Entry, Recognition]


def refused(path: Path, reason: str, *, student: str = "") -> SubmissionResult:
    """The result of a notebook refused before grading: rejected, with the reason."""
    return ungraded_result(path, status="rejected", reason=reason, student=student)


def _precedence(candidates: list[_Candidate]) -> Callable[[_Candidate], tuple[int, tuple[int, ...], int, str]]:
    """Sort key of the candidates: the name's rank, then the latest, then the place (for a stable choice)."""
    by_lms = any(entry.lms_order for entry, _ in candidates)

    def key(candidate: _Candidate) -> tuple[int, tuple[int, ...], int, str]:
        entry, found = candidate
        latest = entry.lms_order if by_lms else (entry.modified_ns,)
        return found.rank, latest, entry.modified_ns, entry.within

    return key


def _claims(named: tuple[str, bool] | None, tagged: str | None) -> list[tuple[str, str]]:
    claims = [("file name", named[0])] if named else []
    return claims + ([("metadata", tagged)] if tagged else [])


def _rank(named: tuple[str, bool] | None, assignment: str) -> int:
    if named is None or named[0] != assignment:
        return 0
    return 2 if named[1] else 1


def _tagged(path: Path, known: Sequence[str]) -> str | None:
    """The assignment the notebook's metadata names, if the course has it."""
    try:
        tagged = read_submission(path).metadata.get("autograder", {})
    except NotANotebookError:
        return None  # grading says why it is not a notebook
    value = tagged.get("assignment") if isinstance(tagged, dict) else None
    return value if isinstance(value, str) and value in known else None


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
