"""Finding submissions in what an instructor hands the grader: notebook files,
folders (of notebooks, or of students' repository copies), and LMS zips
(Canvas "download submissions" naming), with an optional roster CSV that maps
folder or file names to student names and LMS ids.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from autograder.errors import UsageError
from autograder.staging import Staged, stage

_ASSIGNMENT_FOLDER = re.compile(r"^assignments?_\d+$", re.IGNORECASE)  # the course's `assignments_04/`
_CANVAS = re.compile(
    r"^(?P<student>[^_]+)(?:_late)?_(?P<id>\d+)_(?P<attachment>\d+)_(?P<file>.+)$", re.IGNORECASE
)  # Canvas's `login_userid_attachmentid_file`
_CANVAS_COPY = re.compile(r"^(?P<file>.+)-(?P<copy>\d+)(?P<suffix>\.[^.]+)$")  # a resubmission: `file-1.ipynb`
_LABEL_HASH_CHARS = 10

NamesAssignment = Callable[[str], "str | None"]  # a file name -> the assignment it names, if any


@dataclass(frozen=True)
class Entry:
    """One notebook to grade, and whose it is.

    `student` and `within` are its identity: the label, and so the result,
    feedback and Gradescope files, derive from them and nothing else.
    The fields from `assignment` on are filled in by `selection.choose`."""

    student: str  # the key: a folder name, a Canvas login, a file stem
    path: Path
    name: str = ""  # from the roster
    lms_id: str = ""  # Canvas's user id: from the roster or the Canvas file name
    sis_user_id: str = ""  # from the roster
    sis_login_id: str = ""  # from the roster
    section: str = ""  # from the roster
    within: str = ""  # the notebook's path inside its student's folder (its file name when loose)
    lms_order: tuple[int, ...] = ()  # the LMS's submission order (Canvas: attachment id, resubmission number)
    modified_ns: int = 0  # the file's modification time as handed in
    assignment: str | None = None  # which assignment it is graded as
    chosen_by: str = ""  # how that assignment was told
    refusal: str = ""  # why it is not graded at all (its file name and metadata disagree)
    duplicates: tuple[str, ...] = ()  # where the student's other notebooks of it are (`within`): not counted

    @property
    def label(self) -> str:
        """A file-name-safe id, unique per student and notebook by construction:
        a readable part, which may coincide for `Zoë` and `Zoé`, then a hash of
        the exact identity, which does not; the same on every run."""
        identity = f"{self.student}\0{self.within or self.path.name}"
        digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:_LABEL_HASH_CHARS]
        return f"{_slug(self.student)}__{_slug(Path(own_file_name(self.path.name)).stem)}-{digest}"


def own_file_name(name: str) -> str:
    """The file name as the student gave it: without Canvas's `login_userid_attachmentid_`
    prefix or its `-1` resubmission suffix."""
    canvas = _CANVAS.match(name)
    if canvas is None:
        return name
    copy = _CANVAS_COPY.match(canvas["file"])
    return f"{copy['file']}{copy['suffix']}" if copy else canvas["file"]


@dataclass(frozen=True)
class RosterRow:
    name: str
    lms_id: str
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""


def read_roster(path: Path) -> dict[str, RosterRow]:
    """A CSV with columns `match` (folder or file name), `name`, `id` (Canvas's
    user id), and optionally `sis_user_id`, `sis_login_id`, `section`: the ids
    the Canvas gradebook file matches students on."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"match", "name"} <= set(rows[0]):
        raise UsageError(f"{path}: a roster needs the columns match,name[,id,sis_user_id,sis_login_id,section]")

    def cell(row: dict[str, str], column: str) -> str:
        return (row.get(column) or "").strip()

    return {
        row["match"].strip(): RosterRow(
            cell(row, "name"),
            cell(row, "id"),
            cell(row, "sis_user_id"),
            cell(row, "sis_login_id"),
            cell(row, "section"),
        )
        for row in rows
    }


def collect(
    paths: Sequence[Path],
    *,
    unpack_to: Path,
    roster: dict[str, RosterRow] | None = None,
    names_assignment: NamesAssignment | None = None,
) -> list[Entry]:
    """Every notebook under `paths`, with its student; zips are unpacked under `unpack_to`.
    `names_assignment` (the course's names and aliases) helps tell a folder of
    students' folders from one student's own folder by what the folders hold."""
    named = names_assignment or (lambda name: None)
    entries: list[Entry] = []
    for path in paths:
        if not os.path.lexists(path):
            raise UsageError(f"{path}: no such file or folder")
        # the grader's own copy of the notebooks, links and special files refused: nothing below reads the original
        entries += _from_staged(stage(path, into=unpack_to / "staged"), named)
    unique = _distinct_identities(sorted(set(entries), key=lambda e: (e.student, e.within, str(e.path))))
    return [_with_roster(entry, roster or {}) for entry in sorted(unique, key=lambda e: e.label)]


def _from_staged(staged: Staged, named: NamesAssignment) -> list[Entry]:
    """The staged notebooks, and a refused entry (a `rejected` row) for each
    file staging refused, whose it is told as for the notebook it would have been."""
    if staged.file is not None:
        return [_from_file(staged.file)]
    entries = _from_folder(staged.root, named) if staged.root is not None else []
    owner = _owner(staged.root, *_listing(staged.root), named) if staged.root is not None else None
    for refusal in staged.refused:
        parts = PurePosixPath(refusal.relative).parts
        student = owner or (parts[0] if len(parts) > 1 else None)  # None: loose, named as a loose file is
        within = refusal.relative if owner else "/".join(parts[1:])
        entry = _from_file(staged.source_of(refusal), student, within or None, modified_ns=0)
        entries.append(dataclasses.replace(entry, refusal=refusal.reason))
    return entries


def _from_file(
    path: Path, student: str | None = None, within: str | None = None, *, modified_ns: int | None = None
) -> Entry:
    """One notebook: a loose file is its own student's (its stem, or the login in Canvas's naming)."""
    canvas = _CANVAS.match(path.name)
    copy = _CANVAS_COPY.match(canvas["file"]) if canvas else None
    modified = path.lstat().st_mtime_ns if modified_ns is None else modified_ns
    if canvas and student is None:
        order = (int(canvas["attachment"]), int(copy["copy"]) if copy else 0)
        return Entry(
            canvas["student"], path, lms_id=canvas["id"], within=path.name, lms_order=order, modified_ns=modified
        )
    return Entry(student or path.stem, path, within=within or path.name, modified_ns=modified)


def _from_folder(folder: Path, named: NamesAssignment) -> list[Entry]:
    """Loose files are one submission each and each subfolder is one student's,
    whatever its name; but a folder that is one student's own (it holds the
    assignments' notebooks itself, or only `assignments_04/`-like folders) is
    that student's, every notebook in it."""
    loose, subfolders = _listing(folder)
    owner = _owner(folder, loose, subfolders, named)
    if owner is not None:
        return [_from_file(p, owner, p.relative_to(folder).as_posix()) for p in _notebooks(folder)]
    entries = [_from_file(p) for p in loose]
    for student in subfolders:
        entries += [_from_file(p, student.name, p.relative_to(student).as_posix()) for p in _notebooks(student)]
    return entries


def _listing(folder: Path) -> tuple[list[Path], list[Path]]:
    """A staged folder's loose notebooks and its subfolders (staged: no links in it)."""
    loose = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".ipynb")
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return loose, subfolders


def _owner(folder: Path, loose: list[Path], subfolders: list[Path], named: NamesAssignment) -> str | None:
    """The student whose own folder this is, told by what it holds; a folder's
    name decides only where its contents cannot (`alice/assignments_04/`)."""
    here = folder.resolve()
    if _handed_in_by_several(subfolders, named):
        return None  # several subfolders hold the same assignment: several students
    if loose and not any(_CANVAS.match(p.name) for p in loose):
        if all(named(p.name) for p in loose) or (_ASSIGNMENT_FOLDER.match(here.name) and not subfolders):
            return here.parent.name if _ASSIGNMENT_FOLDER.match(here.name) else here.name
        return None
    holding = [s for s in subfolders if any(True for _ in _notebooks(s))]
    if not loose and holding and all(_ASSIGNMENT_FOLDER.match(s.name) for s in holding):
        return here.name  # a repository copy: assignments_04/, assignments_05/
    return None


def _handed_in_by_several(subfolders: list[Path], named: NamesAssignment) -> bool:
    """Whether one assignment (or, where no course names it, one notebook name)
    occurs in two subfolders: then they are two students' folders."""
    seen: set[str] = set()
    for subfolder in subfolders:
        held = {named(p.name) or _normalise(Path(own_file_name(p.name)).stem) for p in _notebooks(subfolder)}
        if held & seen:
            return True
        seen |= held
    return False


def _distinct_identities(entries: list[Entry]) -> list[Entry]:
    """Two notebooks with the same student and place (`class/alice.ipynb` and
    `class/alice/alice.ipynb`, or two class folders given at once) are told
    apart by their full paths, so that their labels differ too."""
    counts: dict[tuple[str, str], int] = {}
    for entry in entries:
        counts[(entry.student, entry.within)] = counts.get((entry.student, entry.within), 0) + 1
    return [
        dataclasses.replace(entry, within=str(entry.path.resolve()))
        if counts[(entry.student, entry.within)] > 1
        else entry
        for entry in entries
    ]


def _notebooks(folder: Path) -> Iterable[Path]:
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in path.parts and not path.is_symlink():
            yield path


def _with_roster(entry: Entry, roster: dict[str, RosterRow]) -> Entry:
    row = roster.get(entry.student) or roster.get(entry.path.name)
    if row is None:
        return entry
    return dataclasses.replace(
        entry,
        name=row.name,
        lms_id=row.lms_id or entry.lms_id,
        sis_user_id=row.sis_user_id,
        sis_login_id=row.sis_login_id,
        section=row.section,
    )


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "submission"


def _slug(text: str, longest: int = 40) -> str:
    """Readable and file-name-safe: accents dropped (`Zoë` -> `Zoe`), the rest
    of the punctuation made `-`; not unique, which the label's hash sees to."""
    ascii_only = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _safe(ascii_only)[:longest].strip("-") or "x"


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
