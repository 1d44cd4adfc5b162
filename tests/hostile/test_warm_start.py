"""The warm start (autograder/warm.py): `autograder grade` of a few notebooks
runs as a worker forked from the fork server, whose kernels are forked from the
server alone. Here, through the real command as root:

- a kernel's own memory (`gc.get_objects()`, its heap and anonymous memory)
  holds no sentinel planted in the hidden checks, in an earlier submission
  that the same worker graded, or in the grader's environment, and the scan
  finds one the kernel made itself;
- the hostile suite's named subset (WARM_ATTACKS) holds on this start path;
- the scores are those of the default start path;
- the launcher's SIGTERM and SIGKILL take the worker, its kernel and its
  sandbox with them;
- off root, a student's `check` is a worker of a server of the student's own,
  and its kernel, in the user-namespace view, a fork of that server.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from autograder.results import SubmissionResult
from tests import other_user
from tests.conftest import ROOT, TENSORS, write_notebook
from tests.hostile.attacks import ATTACKS, TRUST_ATTACKS, VIEW_ATTACKS
from tests.hostile.test_hostile import (
    SENTINEL,
    Arena,
    arena,
    graded_by_the_command,
    hostile_notebook,
    sandbox_processes,
    tree_digest,
)

__all__ = ["arena"]  # the hostile suite's course, sentinels and listener, made anew for this module
student, user_namespaces = other_user.student, other_user.user_namespaces  # the fixtures, for this module

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

COMMAND = Path(sys.executable).parent / "autograder"
ENVIRONMENT_SECRET = "AUTOGRADER_WARM_TEST_SECRET"
# the attacks on what a warm start changes: the grader's environment and memory, its
# processes and sockets, hidden material by path, and a kernel that dies
WARM_ATTACKS = (
    "read-the-grader-environment",
    "reach-other-processes",
    "point-the-grader-at-another-socket",
    "read-hidden-checks-by-path",
    "read-other-submission",
    "os-exit",
)
PUBLIC_CHECK = """
import pytest


@pytest.mark.question("clean")
@pytest.mark.points(1)
def test_nothing_of_the_grader_in_the_kernel(student):
    found = student.fetch("found")
    assert found == ["own"], f"the kernel's memory holds: {found}"


@pytest.mark.question("forked")
@pytest.mark.points(1)
def test_the_kernel_is_a_fork_of_the_server(student):
    assert "forkserver.py" in student.fetch("started_as")


@pytest.mark.question("warm")
@pytest.mark.points(1)
def test_the_grader_is_a_worker_of_the_server():
    with open("/proc/self/cmdline", "rb") as cmdline:
        assert b"forkserver.py" in cmdline.read()
"""
HIDDEN_CHECK = """
import pytest

PLANTED = "{sentinel}"


@pytest.mark.question("hidden")
@pytest.mark.points(1)
def test_hidden(student):
    assert PLANTED
"""
# Each sentinel is written in two halves, joined only where it is planted: the
# scan looks for a first half followed by the second, so its own source holds none.
SCAN = """
import ctypes
import gc
import os


class Span(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]

PARTS = {parts!r}
mine = "".join(PARTS["own"])  # planted by the kernel itself: the scan must find it


def _in(text, first, second):
    at = text.find(first)
    while at >= 0:
        if text.startswith(second, at + len(first)):
            return True
        at = text.find(first, at + 1)
    return False


def scan():
    found = set()
    for holder in gc.get_objects():
        items = list(holder.items()) if isinstance(holder, dict) else holder
        if not isinstance(items, (list, tuple, set, frozenset)):
            continue
        for item in items:
            for text in item if isinstance(item, tuple) else (item,):
                if isinstance(text, str):
                    found.update(name for name, (a, b) in PARTS.items() if _in(text, a, b))
    wanted = {{name: (a.encode(), b.encode()) for name, (a, b) in PARTS.items()}}
    # the kernel's own memory, read as a debugger would (its /proc/self/mem is root's once its uid changed)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.process_vm_readv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    libc.process_vm_readv.restype = ctypes.c_ssize_t
    size = 1 << 24
    buffer = ctypes.create_string_buffer(size + 64)
    local, remote = Span(ctypes.addressof(buffer), 0), Span(0, 0)
    with open("/proc/self/maps") as maps:
        regions = [line.split() for line in maps]
    for fields in regions:
        if "r" not in fields[1] or (len(fields) > 5 and fields[5] not in ("[heap]", "[stack]")):
            continue  # files mapped in are the same for every process: the heap and anonymous memory
        start, end = (int(x, 16) for x in fields[0].split("-"))
        for offset in range(start, end, size):
            local.length = remote.length = min(size + 64, end - offset)
            remote.base = offset
            got = libc.process_vm_readv(os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
            if got <= 0:
                continue
            chunk = buffer.raw[:got]
            for name, (a, b) in wanted.items():
                at = chunk.find(a)
                while at >= 0:
                    if chunk[at + len(a) : at + len(a) + len(b)] == b:
                        found.add(name)
                        break
                    at = chunk.find(a, at + 1)
    return sorted(found)


found = scan()
started_as = open("/proc/self/cmdline").read()
"""


def _halves(sentinel: str) -> tuple[str, str]:
    return sentinel[: len(sentinel) // 2], sentinel[len(sentinel) // 2 :]


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMMAND), *args], capture_output=True, text=True, timeout=timeout, env={**os.environ}, check=False
    )


@pytest.fixture(scope="module")
def sentinel_course(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """A course whose hidden check holds one sentinel, a first submission that
    plants another after its scan, a second that scans, and a third in the
    grader's environment."""
    root = tmp_path_factory.mktemp("warm")
    course = root / "course"
    (course / "assignments" / "warm" / "public_checks").mkdir(parents=True)
    (course / "solutions" / "warm" / "hidden_checks").mkdir(parents=True)
    in_check, earlier, own, environment = (f"WARM-{secrets.token_hex(12)}" for _ in range(4))
    (course / "assignments" / "warm" / "public_checks" / "test_warm.py").write_text(PUBLIC_CHECK)
    (course / "solutions" / "warm" / "hidden_checks" / "test_hidden.py").write_text(
        HIDDEN_CHECK.format(sentinel=in_check)
    )
    (course / "solutions" / "warm" / "assignment.toml").write_text("cell_timeout_s = 120\nnotebook_timeout_s = 300\n")
    parts = {"check": _halves(in_check), "earlier": _halves(earlier), "own": _halves(own)}
    scan = SCAN.format(parts={**parts, "environment": _halves(environment)})
    write_notebook(course / "assignments" / "warm" / "warm.ipynb", scan)
    first = write_notebook(root / "a_first.ipynb", scan, f"planted = {earlier!r}")
    second = write_notebook(root / "b_second.ipynb", scan)
    # the grader's own environment: a long value (a key, a token) outlived its parsing in a
    # server's freed memory, when the server was the one to read the worker's job
    os.environ[ENVIRONMENT_SECRET] = "k" * 3000 + environment
    yield course, first, second
    os.environ.pop(ENVIRONMENT_SECRET, None)


def test_a_kernel_holds_no_hidden_check_and_no_earlier_submission(sentinel_course: tuple[Path, Path, Path]) -> None:
    course, first, second = sentinel_course
    done = _run("--course", str(course), "grade", str(first), str(second), "-a", "warm")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "holds:" not in done.stdout, done.stdout
    assert len(re.findall(r"score 4/4", done.stdout)) == 2, done.stdout  # clean, forked, warm, hidden: each
    alone = _run("--course", str(course), "grade", str(second), "-a", "warm")  # one notebook: the usual command
    assert alone.returncode == 0 and "holds:" not in alone.stdout, alone.stdout
    assert "score 4/4" in alone.stdout, alone.stdout


def _graded_warm(arena: Arena, attack_id: str) -> SubmissionResult:
    attack = next(a for a in (*ATTACKS, *VIEW_ATTACKS, *TRUST_ATTACKS) if a.id == attack_id)
    path = hostile_notebook(arena, attack)
    before = tree_digest(arena.course.root, arena.out, arena.other.parent)
    result = graded_by_the_command(arena, path)
    assert tree_digest(arena.course.root, arena.out, arena.other.parent) == before, attack_id
    return result


@pytest.mark.parametrize("attack_id", WARM_ATTACKS)
def test_the_named_hostile_subset_holds_on_the_warm_start(arena: Arena, attack_id: str) -> None:
    attack = next(a for a in (*ATTACKS, *VIEW_ATTACKS, *TRUST_ATTACKS) if a.id == attack_id)
    result = _graded_warm(arena, attack_id)
    assert result.status == "graded", result.reason
    canary = next(c for c in result.checks if c.question == "canary")
    if attack.expect == "kernel-died":
        assert result.execution is not None and result.execution.status == "kernel-died"
        assert "kernel" in canary.message
    else:
        assert result.score == result.max_score > 0, [
            (c.name, c.message) for c in result.checks if c.status != "passed"
        ]
        assert canary.message.replace('"', "'").startswith(f"canary='{attack.blocked}"), canary.message
    assert SENTINEL not in result.to_json()
    assert sandbox_processes() == [] and arena.listener_hits == []


def test_the_warm_start_scores_as_the_default_start(
    graded_solutions: Mapping[str, SubmissionResult], tmp_path: Path
) -> None:
    report = tmp_path / "warm.json"
    notebook = ROOT / "solutions" / TENSORS / f"{TENSORS}.ipynb"
    done = _run("grade", str(notebook), "-a", TENSORS, "--json", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    warm, default = json.loads(report.read_text()), json.loads(graded_solutions[TENSORS].to_json())
    assert [(c["name"], c["status"], c["message"]) for c in warm["checks"]] == [
        (c["name"], c["status"], c["message"]) for c in default["checks"]
    ]
    assert (warm["score"], warm["isolation"].split()[0]) == (default["score"], "namespaces")


def _warm_processes() -> set[tuple[int, int]]:
    """(uid, pid) of every process of a warm start's server: the server, its
    holders, the worker (root) and the kernels forked from it (a sandbox's uid)."""
    lines = subprocess.run(["ps", "-ww", "-eo", "uid=,pid=,args="], capture_output=True, text=True, check=True).stdout
    return {
        (int(line.split()[0]), int(line.split()[1]))
        for line in lines.splitlines()
        if "forkserver.py serve" in line and "--workers" in line and sys.prefix in line
    }


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_the_launcher_s_end_ends_the_worker_its_kernel_and_its_sandbox(tmp_path: Path, how: signal.Signals) -> None:
    notebook = write_notebook(tmp_path / "sleeps.ipynb", "import time\nstarted = True\ntime.sleep(120)")
    report = tmp_path / "result.json"
    before = _warm_processes()
    launcher = subprocess.Popen(
        [str(COMMAND), "grade", str(notebook), "-a", TENSORS, "--json", str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(uid >= 200_000 for uid, _ in _warm_processes() - before) and time.monotonic() < deadline:
            time.sleep(0.2)  # until the kernel, forked from the warm server, is up
        assert any(uid >= 200_000 for uid, _ in _warm_processes() - before), "no kernel forked from a warm server"
        launcher.send_signal(how)
        code = launcher.wait(timeout=60)
        said = launcher.stdout.read() if launcher.stdout else ""
        assert code == (143 if how == signal.SIGTERM else -signal.SIGKILL), said
        deadline = time.monotonic() + 40  # a worker whose launcher was killed tears down on its own
        while (_warm_processes() - before or sandbox_processes()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _warm_processes() - before == set()
        assert sandbox_processes() == []
        assert not report.exists()  # stopped, it wrote no result (killed, as a cold grader killed: none either)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        if launcher.stdout is not None:
            launcher.stdout.close()


def test_off_root_the_student_s_check_is_warm_too(
    student: other_user.OtherUser, user_namespaces: None, sentinel_course: tuple[Path, Path, Path]
) -> None:
    course, _, second = sentinel_course
    mine = student.home / "course"
    shutil.copytree(course / "assignments", mine / "assignments")  # the public part: a student's own copy
    for path in [mine, *mine.rglob("*")]:
        os.chown(path, student.uid, student.gid)
    notebook = student.give(second)
    done = student.run(str(COMMAND), "--course", str(mine), "check", str(notebook), "-a", "warm", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = {row["question"]: row["verdict"] for row in json.loads(done.stdout)[0]["questions"]}
    assert verdicts == {"clean": "passed", "forked": "passed", "warm": "passed"}, done.stdout
