"""Staging: what a student hands in is copied into a folder the grader owns
before anything else reads it, and whatever is not a plain file of a bounded
size is refused, with its reason, instead of being followed, waited on or
read whole.

One rule, here and nowhere else, for every way a notebook arrives (a loose
file, a folder of students' folders or repository copies, an LMS zip,
Gradescope's submission folder, the file handed to a container) and for every
file a check reads from the working folder:

* a symbolic link is never followed: not the file's own name, and not any
  folder between the root the grader was given and the file (each folder is
  opened with `O_NOFOLLOW` relative to its parent's descriptor);
* a file is opened non-blocking and `fstat`ed before a byte is read, and only
  a regular file is read (a FIFO or a device cannot hang the grader);
* at most the cap plus one byte is read, whatever the file's size says (a
  sparse 7 GiB file costs nothing to refuse).

The root itself (the path the instructor typed, the grader's own working
folder) is the grader's and is opened as given; only what lies below it is
the student's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from autograder.errors import NotANotebookError, UsageError

MAX_FILE_BYTES = 64 * 1024 * 1024  # the intake cap, per notebook
MAX_STAGED_FILES = 20_000  # per path handed in: a class of repository copies is far below
MAX_STAGED_BYTES = 4 * 1024**3
MAX_DEPTH = 32  # folders below the handed-in one; each level holds a descriptor while it is walked
LINK = "a symbolic link: not followed"
_NOTEBOOK = ".ipynb"
_SKIPPED_FOLDERS = frozenset({".ipynb_checkpoints", ".git"})  # never a submission
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | _CLOEXEC
_FOLDER_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | _CLOEXEC
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Refusal:
    """A file of a submission that was not taken, where it was, and why."""

    relative: str  # its place inside what was handed in ("" for the handed-in path itself)
    reason: str  # for the student: "a symbolic link: not followed", "larger than 64 MiB"


@dataclass(frozen=True)
class Staged:
    """What one handed-in path became: the grader's own copy of its notebooks
    (`root`, a folder; or `file` where one notebook was handed in) and the
    files refused on the way."""

    source: Path
    root: Path | None = None
    file: Path | None = None
    refused: tuple[Refusal, ...] = ()

    def source_of(self, refusal: Refusal) -> Path:
        """Where a refused file was, as handed in (inside a zip: `class.zip/alice/x.ipynb`)."""
        return self.source / refusal.relative if refusal.relative else self.source


def read_regular(name: str | Path, *, dir_fd: int | None = None, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of one regular file, read under the rule above; `NotANotebookError`
    with the reason when the file is refused."""
    return _read(name, dir_fd=dir_fd, limit=limit, shown=name)[0]


def read_inside(root: Path, relative: str, *, limit: int) -> bytes:
    """A file at `relative` under `root` (the grader's folder, e.g. the working
    folder), no folder on the way and not the file itself being a link."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
        raise NotANotebookError(relative, "not a path inside the folder")
    if not _nameable(relative):  # a name the student's code sent (a figure record's): never a crash here
        raise NotANotebookError(relative, "not a name a file can have")
    folder = os.open(root, _FOLDER_FLAGS & ~os.O_NOFOLLOW)  # the root is the grader's own
    try:
        for part in parts[:-1]:
            inner = _open_folder(part, dir_fd=folder, shown=relative)
            os.close(folder)
            folder = inner
        return _read(parts[-1], dir_fd=folder, limit=limit, shown=relative)[0]
    finally:
        os.close(folder)


def _nameable(path: str) -> bool:
    """Whether a file could have this name: no NUL byte, nothing the file system's
    encoding cannot write (a lone surrogate). `os` raises ValueError for either."""
    try:
        return b"\0" not in os.fsencode(path)
    except UnicodeError:
        return False


def stage(source: Path, *, into: Path) -> Staged:
    """Copy the notebooks of `source` (a notebook file, a folder, a zip) into a
    folder of their own under `into`, made afresh (the same folder on every run
    for the same path, so that labels and cached results stay put). Only
    `.ipynb` files are copied, as regular files with their modification times;
    every link, special file or oversized file named like a submission
    becomes a `Refusal`."""
    absolute = Path(os.path.abspath(source))
    digest = hashlib.sha256(os.fsencode(absolute)).hexdigest()[:10]
    target = _fresh_folder(into, f"{_safe(absolute.name)}-{digest}")
    try:
        info = os.lstat(absolute)
    except FileNotFoundError:
        raise UsageError(f"{source}: no such file or folder") from None
    if stat.S_ISDIR(info.st_mode):
        # kept under its parent's name and its own: both can tell whose folder it is (`alice/assignments_04/`)
        root = target / (_safe(absolute.parent.name) or "root") / absolute.name
        folder = os.open(absolute, _FOLDER_FLAGS)
        try:
            tally = _Tally(source)
            _copy_folder(folder, root, PurePosixPath(), tally)
        finally:
            os.close(folder)
        root.mkdir(parents=True, exist_ok=True)
        return Staged(source, root=root, refused=tuple(tally.refused))
    if (refusal := _refusal(info, limit=None)) is not None:  # a link, a FIFO: refused before it is opened
        return Staged(source, refused=(Refusal("", refusal),))
    try:
        handle = os.open(absolute, _FILE_FLAGS)
    except OSError as error:
        return Staged(source, refused=(Refusal("", _why_not_opened(error)),))
    with os.fdopen(handle, "rb") as file:
        opened = os.fstat(file.fileno())
        if _refusal(opened, limit=None) is None and zipfile.is_zipfile(file):  # an LMS zip: no cap on the whole
            root = target / _safe(absolute.stem)
            tally = _Tally(source)
            _unpack(file, root, tally)
            root.mkdir(parents=True, exist_ok=True)
            return Staged(source, root=root, refused=tuple(tally.refused))
        try:
            file.seek(0)
            data = _read_opened(file.fileno(), opened, limit=MAX_FILE_BYTES, shown=source)
        except NotANotebookError as error:
            return Staged(source, refused=(Refusal("", error.reason),))
    copy = target / absolute.name
    _write(copy, data, opened.st_mtime_ns)
    return Staged(source, file=copy)


class _Tally:
    """What one staging kept and refused, within its bounds."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.refused: list[Refusal] = []
        self.files = 0
        self.bytes = 0

    def refuse(self, relative: PurePosixPath | str, reason: str) -> None:
        self.refused.append(Refusal(str(relative), reason))

    def keep(self, target: Path, data: bytes, modified_ns: int) -> None:
        self.files += 1
        self.bytes += len(data)
        if self.files > MAX_STAGED_FILES or self.bytes > MAX_STAGED_BYTES:
            raise UsageError(f"{self.source}: more than {MAX_STAGED_FILES} notebooks or 4 GiB to take in")
        _write(target, data, modified_ns)


def _copy_folder(folder: int, target: Path, relative: PurePosixPath, tally: _Tally) -> None:
    """The notebooks under one folder, walked through descriptors: a folder
    swapped for a link while this runs is refused, not followed."""
    if len(relative.parts) > MAX_DEPTH:
        tally.refuse(relative, f"more than {MAX_DEPTH} folders deep: not taken in")
        return
    with os.scandir(folder) as listing:
        children = sorted(listing, key=lambda child: child.name)
    for child in children:
        where = relative / child.name
        if child.is_symlink():
            if _could_be_a_submission(where):
                tally.refuse(where, LINK)
        elif child.is_dir(follow_symlinks=False):
            if child.name in _SKIPPED_FOLDERS:
                continue
            try:
                inner = _open_folder(child.name, dir_fd=folder, shown=where)
            except NotANotebookError as error:
                tally.refuse(where, error.reason)
                continue
            try:
                _copy_folder(inner, target / child.name, where, tally)
            finally:
                os.close(inner)
        elif child.name.endswith(_NOTEBOOK):
            try:
                data, info = _read(child.name, dir_fd=folder, limit=MAX_FILE_BYTES, shown=where)
            except NotANotebookError as error:
                tally.refuse(where, error.reason)
                continue
            tally.keep(target / child.name, data, info.st_mtime_ns)


def _unpack(archive: BinaryIO, target: Path, tally: _Tally) -> None:
    """The notebooks of a zip, with the same rule: no member outside the
    archive, no link or special file, none past the cap (read at most the cap
    plus one byte, whatever the member's header says)."""
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise UsageError(f"{tally.source}: not a zip that can be read ({error})") from None
    with bundle:
        members = bundle.infolist()
        if len(members) > MAX_STAGED_FILES:
            raise UsageError(f"{tally.source}: more than {MAX_STAGED_FILES} members to unpack")
        for member in members:
            name = PurePosixPath(member.filename)
            if member.is_dir() or _SKIPPED_FOLDERS & set(name.parts):
                continue
            mode = member.external_attr >> 16 if member.create_system == 3 else 0  # Unix: the file's mode
            if name.is_absolute() or ".." in name.parts or not name.parts:
                tally.refuse(name.name, f"a path outside the archive ({member.filename!r}): not unpacked")
            elif stat.S_ISLNK(mode):
                if _could_be_a_submission(name):
                    tally.refuse(name, LINK)
            elif not name.name.endswith(_NOTEBOOK):
                continue
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                tally.refuse(name, f"not a regular file ({_kind(mode)})")
            elif member.file_size > MAX_FILE_BYTES:
                tally.refuse(name, _too_large(MAX_FILE_BYTES))
            else:
                _unpack_member(bundle, member, target / name, tally)


def _unpack_member(bundle: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, tally: _Tally) -> None:
    relative = PurePosixPath(member.filename)
    try:
        with bundle.open(member) as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, ValueError) as error:  # damaged or encrypted
        tally.refuse(relative, f"cannot be unpacked ({type(error).__name__}: {error})")
        return
    if len(data) > MAX_FILE_BYTES:
        tally.refuse(relative, _too_large(MAX_FILE_BYTES))
        return
    when = time.mktime((*member.date_time, 0, 0, -1))  # the member's time, not the unpacking's
    try:
        tally.keep(target, data, int(when * 1e9))
    except (IsADirectoryError, NotADirectoryError, FileExistsError) as error:  # `a.ipynb` and `a.ipynb/b.ipynb`
        tally.refuse(relative, f"cannot be unpacked ({type(error).__name__})")


def _read(name: str | Path, *, dir_fd: int | None, limit: int, shown: object) -> tuple[bytes, os.stat_result]:
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)  # refuse a device before opening it
    except OSError as error:
        raise NotANotebookError(shown, _why_not_opened(error)) from None
    if (refusal := _refusal(before, limit)) is not None:
        raise NotANotebookError(shown, refusal)
    try:
        handle = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        raise NotANotebookError(shown, _why_not_opened(error)) from None
    try:
        info = os.fstat(handle)  # what was opened, which may not be what was looked at
        return _read_opened(handle, info, limit=limit, shown=shown), info
    finally:
        os.close(handle)


def _read_opened(handle: int, info: os.stat_result, *, limit: int, shown: object) -> bytes:
    """At most `limit` bytes of an open file, after its `fstat` says it is a regular file."""
    if (refusal := _refusal(info, limit)) is not None:
        raise NotANotebookError(shown, refusal)
    chunks: list[bytes] = []
    left = limit + 1  # one more than allowed: a file that grew, or lied about its size, is seen
    while left > 0 and (chunk := os.read(handle, min(_CHUNK, left))):
        chunks.append(chunk)
        left -= len(chunk)
    data = b"".join(chunks)
    if len(data) > limit:
        raise NotANotebookError(shown, _too_large(limit))
    return data


def _refusal(info: os.stat_result, limit: int | None) -> str | None:
    """Why a file with this `stat` is not read, or None."""
    if stat.S_ISLNK(info.st_mode):
        return LINK
    if stat.S_ISDIR(info.st_mode):
        return "a directory, not a file"
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file ({_kind(info.st_mode)})"
    if limit is not None and info.st_size > limit:
        return _too_large(limit)
    return None


def _open_folder(name: str, *, dir_fd: int, shown: object) -> int:
    try:
        return os.open(name, _FOLDER_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        why = _why_not_opened(error)
        with contextlib.suppress(OSError):  # O_NOFOLLOW with O_DIRECTORY says ENOTDIR for a link
            if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                why = LINK
        raise NotANotebookError(shown, f"its folder `{name}`: {why}") from None


def _why_not_opened(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return LINK
    if error.errno == errno.ENOENT:
        return "no such file"
    if error.errno == errno.ENOTDIR:
        return "not a folder"
    if error.errno == errno.ENXIO:
        return "not a regular file (socket)"
    return f"cannot be opened ({error.strerror})"


def _kind(mode: int) -> str | None:
    """The file type, in words, or None for a regular file."""
    kinds = {
        stat.S_IFIFO: "FIFO",
        stat.S_IFSOCK: "socket",
        stat.S_IFCHR: "character device",
        stat.S_IFBLK: "block device",
        stat.S_IFDIR: "directory",
        stat.S_IFLNK: "symbolic link",
    }
    if stat.S_IFMT(mode) == stat.S_IFREG:
        return None
    return kinds.get(stat.S_IFMT(mode), "unknown type")


def _too_large(limit: int) -> str:
    return f"larger than {limit // 2**20} MiB"


def _could_be_a_submission(relative: PurePosixPath) -> bool:
    """A link is worth a row when it is named like a notebook, or where a
    student's folder or an assignment's folder would be (the top two levels),
    unless hidden; links deep in a repository copy (a committed virtual
    environment's `lib64 -> lib`) are not submissions and make no row."""
    if relative.name.endswith(_NOTEBOOK):
        return True
    return len(relative.parts) <= 2 and not relative.name.startswith(".")


def _fresh_folder(into: Path, name: str) -> Path:
    """`into/name`, emptied: `into` must be the grader's own folder (not a
    link, not another user's), since what is staged there is then trusted."""
    into.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(into)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise UsageError(f"{into}: not a folder of the grader's own to take submissions into")
    os.chmod(into, 0o700)  # students' notebooks: not for other users of the machine
    target = into / name
    if os.path.lexists(target):
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    target.mkdir(mode=0o700)
    return target


def _write(target: Path, data: bytes, modified_ns: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC, 0o600)
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    os.utime(target, ns=(modified_ns, modified_ns))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "submission"
