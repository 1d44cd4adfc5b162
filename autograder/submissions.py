"""Finding submissions in what an instructor hands the grader: notebook files,
folders (of notebooks, or of students' repository copies), and LMS zips
(Canvas "download submissions" naming), with an optional roster CSV that maps
folder or file names to student names and LMS ids.
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from autograder.errors import UsageError

_ASSIGNMENT_FOLDER = re.compile(r"^assignments?_\d+$", re.IGNORECASE)  # the course's `assignments_04/`
_CANVAS = re.compile(r"^(?P<student>[^_]+)(?:_late)?_(?P<id>\d+)_\d+_(?P<file>.+)$", re.IGNORECASE)
_ZIP_MAX_MEMBERS = 20_000
_ZIP_MAX_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class Entry:
    """One notebook to grade, and whose it is."""

    student: str  # the key: a folder name, a Canvas login, a file stem
    path: Path
    name: str = ""  # from the roster
    lms_id: str = ""  # from the roster or the Canvas file name

    @property
    def label(self) -> str:
        """A file-name-safe id, unique per student and notebook."""
        file = _CANVAS.sub(r"\g<file>", self.path.stem)
        return _safe(f"{self.student}__{file}")


@dataclass(frozen=True)
class RosterRow:
    name: str
    lms_id: str


def read_roster(path: Path) -> dict[str, RosterRow]:
    """A CSV with columns `match` (folder or file name), `name`, `id`."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"match", "name"} <= set(rows[0]):
        raise UsageError(f"{path}: a roster needs the columns match,name[,id]")
    return {row["match"].strip(): RosterRow(row["name"].strip(), (row.get("id") or "").strip()) for row in rows}


def collect(paths: Sequence[Path], *, unpack_to: Path, roster: dict[str, RosterRow] | None = None) -> list[Entry]:
    """Every notebook under `paths`, with its student; zips are unpacked under `unpack_to`."""
    entries: list[Entry] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_file() and zipfile.is_zipfile(path):
            entries += _from_folder(_unpack(path, unpack_to / _safe(path.stem)))
        elif path.is_dir():
            entries += _from_folder(path)
        else:
            entries.append(_from_file(path))
    return [_with_roster(entry, roster or {}) for entry in sorted(set(entries), key=lambda e: e.label)]


def _from_file(path: Path) -> Entry:
    canvas = _CANVAS.match(path.name)
    if canvas:
        return Entry(student=canvas["student"], path=path, lms_id=canvas["id"])
    return Entry(student=path.stem, path=path)


def _from_folder(folder: Path) -> list[Entry]:
    """Loose files are one submission each; each subfolder is one student's;
    but one student's own folder (the course's `assignments_04/`, or the
    repository holding it) is that student's, every notebook in it."""
    owner = _owner(folder)
    if owner is not None:
        return [Entry(student=owner, path=p) for p in _notebooks(folder)]
    entries = [_from_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.suffix == ".ipynb"]
    for student in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        entries += [Entry(student=student.name, path=p) for p in _notebooks(student)]
    return entries


def _owner(folder: Path) -> str | None:
    """The student whose own folder this is, where the layout says so."""
    folder = folder.resolve()
    if _ASSIGNMENT_FOLDER.match(folder.name):
        return folder.parent.name
    inner = [p for p in folder.iterdir() if p.is_dir() and _ASSIGNMENT_FOLDER.match(p.name)]
    loose = [p for p in folder.iterdir() if p.is_file() and p.suffix == ".ipynb"]
    return folder.name if inner and not loose else None


def _notebooks(folder: Path) -> Iterable[Path]:
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in path.parts and not path.is_symlink():
            yield path


def _unpack(archive: Path, target: Path) -> Path:
    """Extract safely: no absolute or escaping names, no links, bounded size."""
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        if len(members) > _ZIP_MAX_MEMBERS or sum(m.file_size for m in members) > _ZIP_MAX_BYTES:
            raise UsageError(f"{archive}: too many or too large members to unpack")
        for member in members:
            name = Path(member.filename)
            if name.is_absolute() or ".." in name.parts or (member.external_attr >> 28) == 0xA:
                continue
            bundle.extract(member, target)
    return target


def _with_roster(entry: Entry, roster: dict[str, RosterRow]) -> Entry:
    row = roster.get(entry.student) or roster.get(entry.path.name)
    if row is None:
        return entry
    return Entry(entry.student, entry.path, name=row.name, lms_id=row.lms_id or entry.lms_id)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "submission"
