"""Whose things are whose: the one killer of a submission's processes, and the
owner records that let a grader remove what a dead grader left behind.

A folder a grader makes for a submission (a sandbox, a fork server's, a
fresh-uid workspace, the checks' scratch) holds an owner record: the pid and
start time of the grader process (pids are reused), and beside it the uid its
student code runs as. A grader killed outright (SIGKILL, the OOM killer) cannot clean
up; the next one that starts finds the record's process gone and removes the
folder and every process of its uid. A live grader's folders, a concurrent
one's included, are never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

OWNER = "owner"  # the record in each folder: "PID START_TIME" (the format every version reads)
STUDENT_UID = "student-uid"  # beside it, where the folder's student code runs as a uid of its own
BEING_MADE_S = 60  # a folder with no record yet is being made: alive this long
TEMP_PREFIX = "autograder-"  # the grader's folders under the temp folder
FIRST_UID = 200_000  # every submission's user is a fresh uid from here up: no account of the host


def claim(folder: Path, *, uid: int | None = None) -> None:
    """Mark `folder` as this process's, with the uid its student code runs as."""
    if uid is not None:
        (folder / STUDENT_UID).write_text(str(uid))
    (folder / OWNER).write_text(f"{os.getpid()} {start_time(os.getpid())}")


def start_time(pid: int) -> str:
    """A process's start time (clock ticks since boot): with the pid, it names
    the process even after the pid is reused. "gone" where /proc has no such pid,
    or only a killed one's zombie (a warm start's worker, killed with its
    launcher, may take seconds to be reaped: what it left is a dead grader's)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    fields = stat.rsplit(")", 1)[1].split()  # counted after the command's name
    return "gone" if fields[0] in ("Z", "X") else fields[19]  # the state (field 3), the start time (field 22)


def owned_by_the_living(folder: Path) -> bool:
    """True while the process that claimed `folder` runs; a folder being made
    right now (no record yet) counts as alive for `BEING_MADE_S`."""
    try:
        pid, started = (folder / OWNER).read_text().split()
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            return time.time() - folder.stat().st_mtime < BEING_MADE_S
        return False
    return pid.isdigit() and started == start_time(int(pid))


def _recorded_uid(folder: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((folder / STUDENT_UID).read_text())
    return None


@contextlib.contextmanager
def owned_temp_folder(prefix: str, *, uid: int | None = None) -> Iterator[Path]:
    """A temporary folder (0700) claimed by this process, removed on exit, and
    by the next grader if this one is killed first."""
    folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + prefix))
    try:
        claim(folder, uid=uid)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_dead_temp_folders() -> None:
    """The temp folders of dead graders: killed first (their uid's processes,
    as the fresh-uid tier leaves them orphaned), then removed. Only folders this
    user owns that carry a record: anything else named alike is not ours."""
    for folder in Path(tempfile.gettempdir()).glob(TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if folder.is_symlink() or folder.lstat().st_uid != os.geteuid() or not (folder / OWNER).is_file():
                continue
            if not owned_by_the_living(folder):
                uid = _recorded_uid(folder)
                if uid is not None and uid >= FIRST_UID:
                    kill_everything_of(uid)
                shutil.rmtree(folder, ignore_errors=True)


def kill_everything_of(uid: int, cgroups: Iterable[Path] = (), timeout_s: float = 30.0) -> None:
    """SIGKILL every process of the submission's user and in its cgroups, until
    none exists at all (zombies included). The one killer of every runner: the
    sandbox, the fresh-uid tier, the grading container. A killed kernel whose
    threads are still unwinding stays a zombie for a while ("Zl"): on a loaded
    machine that took more than 10 s, hence the longer wait."""
    cgroups = list(cgroups)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = {int(pid) for cgroup in cgroups for pid in cgroup_members(cgroup)} | _processes_of(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def cgroup_members(cgroup: Path) -> list[str]:
    try:
        return (cgroup / "cgroup.procs").read_text().split()
    except OSError:
        return []


def _processes_of(uid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        found.add(int(status.parent.name))
                    break
    return found
