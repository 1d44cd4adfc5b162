"""Hostile notebooks against the real 02_tensors assignment, in the real sandbox.

Each attack is added to honest content (the reference or the blank template)
and graded. The grader must finish; the score must be what the honest content
earns; the attack's own canary must record that it failed; no sentinel planted
in hidden material may appear anywhere in the result; no file outside the
sandbox may change; and no process may be left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autograder.assets import default_store
from autograder.course import Course
from autograder.grading import grade_notebook
from autograder.isolation import sandbox_available
from autograder.results import SubmissionResult
from tests.conftest import ROOT, TENSORS
from tests.hostile.attacks import ATTACKS, VIEW_ATTACKS, Attack

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.slow,
    pytest.mark.skipif(not sandbox_available(), reason="the sandbox needs root on Linux with cgroup v1"),
]

SENTINEL = f"SENTINEL-{secrets.token_hex(8)}"
HOSTILE_CONFIG = """
cell_timeout_s = 6
notebook_timeout_s = 90
bridge_timeout_s = 10
memory_mb = 1536
processes = 64
scratch_mb = 256
"""
CANARY_CHECK = """
import pytest

@pytest.mark.question("canary")
@pytest.mark.points(0)
def test_canary(student):
    assert False, "canary=" + repr(student.fetch("canary"))[:3000]
"""


@dataclass(frozen=True)
class Arena:
    root: Path
    course: Course
    submissions: Path
    other: Path
    out: Path
    listener_port: int
    listener_hits: list[bytes]


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    root = tmp_path_factory.mktemp("arena")
    course = root / "course"
    shutil.copytree(ROOT / "assignments" / TENSORS, course / "assignments" / TENSORS)
    shutil.copytree(ROOT / "solutions" / TENSORS, course / "solutions" / TENSORS)
    hidden = course / "solutions" / TENSORS / "hidden_checks"
    (hidden / "test_hidden.py").write_text((hidden / "test_hidden.py").read_text() + f"\n# {SENTINEL}-hidden\n")
    (hidden / "test_zz_canary.py").write_text(CANARY_CHECK)
    (course / "solutions" / TENSORS / "assignment.toml").write_text(HOSTILE_CONFIG)
    solution = course / "solutions" / TENSORS / f"{TENSORS}.ipynb"
    document = json.loads(solution.read_text())
    document["cells"][0]["source"] += f"\n\n{SENTINEL}-solution"
    solution.write_text(json.dumps(document))
    submissions = root / "submissions"
    submissions.mkdir()
    other = submissions / "another_student.ipynb"
    other.write_text(json.dumps({**document, "metadata": {"note": f"{SENTINEL}-other"}}))
    out = root / "results"
    out.mkdir()
    hits: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            hits.append(connection.recv(100))
            connection.close()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    yield Arena(root, Course(course), submissions, other, out, server.getsockname()[1], hits)
    stop.set()
    thread.join()
    server.close()


def tree_digest(*folders: Path) -> str:
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            digest.update(str(path).encode())
            if path.is_file() and not path.is_symlink():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def sandbox_processes() -> list[str]:
    """Processes of sandbox users started from this environment (another checkout's
    tests running beside this one are not ours to count)."""
    lines = subprocess.run(["ps", "-eo", "uid=,pid=,args="], capture_output=True, text=True, check=True).stdout
    ours = [line for line in lines.splitlines() if int(line.split()[0]) >= 200_000]
    return [line for line in ours if sys.prefix in line or "/.venv/" not in line]


def hostile_notebook(arena: Arena, attack: Attack) -> Path:
    course = arena.course.root
    base = (
        (course / "solutions" if attack.base == "solution" else course / "assignments") / TENSORS / f"{TENSORS}.ipynb"
    )
    document = json.loads(base.read_text())
    path = arena.submissions / f"{attack.id}.ipynb"
    code = attack.code.format(
        hidden=str(course / "solutions" / TENSORS / "hidden_checks" / "test_hidden.py"),
        solution=str(course / "solutions" / TENSORS / f"{TENSORS}.ipynb"),
        other=str(arena.other),
        course_parent=str(arena.root),
        out_file=str(arena.out / "forged.json"),
        course_file=str(course / "assignments" / TENSORS / "forged.json"),
        submission=str(path),
        port=arena.listener_port,
        sentinel=SENTINEL,
        checkout=str(ROOT),
        checkout_parent=str(ROOT.parent),
        course_root=str(course),
        hidden_assets=str(default_store().hidden),
        results=str(arena.out),
    )
    document["cells"].append(
        {"cell_type": "code", "metadata": {}, "source": code, "outputs": [], "execution_count": None}
    )
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="module", params=[*ATTACKS, *VIEW_ATTACKS], ids=lambda a: a.id)
def graded(request: pytest.FixtureRequest, arena: Arena) -> tuple[Attack, SubmissionResult, str, str]:
    attack: Attack = request.param
    path = hostile_notebook(arena, attack)
    before = tree_digest(arena.course.root, arena.out, arena.other.parent)
    result = grade_notebook(path, course=arena.course, assignment_name=TENSORS)
    after = tree_digest(arena.course.root, arena.out, arena.other.parent)
    return attack, result, before, after


def test_grader_finishes_with_the_honest_score(graded: tuple[Attack, SubmissionResult, str, str]) -> None:
    attack, result, _, _ = graded
    assert result.status == "graded", result.reason
    assert result.execution is not None and "uid" in result.execution.sandbox
    if attack.expect == "full":
        failing = [(c.name, c.message) for c in result.checks if c.status != "passed" and c.question != "canary"]
        assert result.score == result.max_score > 0, failing
    else:
        assert result.score == 0 and result.max_score > 0
    if attack.expect == "kernel-died":
        assert result.execution.status == "kernel-died"
        assert any(c.message.startswith("the kernel died") or "kernel" in c.message for c in result.checks)


def test_the_attack_recorded_its_own_failure(graded: tuple[Attack, SubmissionResult, str, str]) -> None:
    attack, result, _, _ = graded
    canary = next(c for c in result.checks if c.question == "canary")
    if attack.expect == "kernel-died":
        assert "kernel" in canary.message
    elif attack.blocked:
        assert canary.message.replace('"', "'").startswith(f"canary='{attack.blocked}"), canary.message


def test_no_secret_reaches_the_result(graded: tuple[Attack, SubmissionResult, str, str]) -> None:
    _, result, _, _ = graded
    assert SENTINEL not in result.to_json()


def test_nothing_outside_the_sandbox_changed(graded: tuple[Attack, SubmissionResult, str, str]) -> None:
    _, _, before, after = graded
    assert before == after


def test_no_process_is_left(graded: tuple[Attack, SubmissionResult, str, str]) -> None:
    assert sandbox_processes() == []
    assert not [p for p in Path("/sys/fs/cgroup/pids/autograder").glob("s*") if p.is_dir() and ours(p)]


def ours(cgroup: Path) -> bool:
    """A cgroup this test process made, or one no sandbox folder claims (another
    grader's, a concurrent one's, is not this test's to count)."""
    home = Path(os.environ.get("AUTOGRADER_SANDBOX_DIR", "/var/lib/autograder/sandboxes")) / cgroup.name
    try:
        return (home / "owner").read_text().split()[0] == str(os.getpid())
    except OSError:
        return not home.exists()


def test_nothing_reached_the_loopback_listener(arena: Arena, graded: tuple[Attack, SubmissionResult, str, str]) -> None:
    assert arena.listener_hits == []


def grade_with_canary(arena: Arena, name: str, base: str, source: str) -> tuple[SubmissionResult, Any]:
    """Grade `base` ("assignments" or "solutions") with one cell appended that
    binds `canary` to plain data, and return the result and that data."""
    path = arena.submissions / f"{name}.ipynb"
    document = json.loads((arena.course.root / base / TENSORS / f"{TENSORS}.ipynb").read_text())
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}
    document["cells"].append(cell)
    path.write_text(json.dumps(document))
    result = grade_notebook(path, course=arena.course, assignment_name=TENSORS)
    canary = next(c for c in result.checks if c.question == "canary").message
    return result, eval(canary.removeprefix("canary="))  # our own check's repr of plain data


def test_kernel_runs_unprivileged_in_its_own_network_namespace(arena: Arena) -> None:
    _, canary = grade_with_canary(
        arena,
        "whoami",
        "assignments",
        "import os\ncanary = (os.getuid(), os.getgid(), os.readlink('/proc/self/ns/net'), os.getpid())",
    )
    uid, gid, namespace, pid = canary
    assert uid >= 200_000 and gid == uid
    assert namespace != os.readlink("/proc/self/ns/net")
    assert pid == 1, "the kernel is the first process of its own PID namespace"


@pytest.mark.parametrize("forkserver", ["1", "0"], ids=["fork-server", "plain-start"])
def test_kernels_from_the_fork_server_and_plain_ones_grade_alike(
    arena: Arena, forkserver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOGRADER_FORKSERVER", forkserver)
    result, canary = grade_with_canary(
        arena,
        f"started-{forkserver}",
        "solutions",
        "import os\ncanary = (open('/proc/self/cmdline').read().replace(chr(0), ' '), os.getpid(), os.getuid())",
    )
    command, pid, uid = canary
    assert ("forkserver.py serve" in command) == (forkserver == "1"), command
    assert pid == 1 and uid >= 200_000
    assert result.score == result.max_score > 0


def test_honest_submissions_grade_the_same_beside_hostile_ones(arena: Arena) -> None:
    honest = arena.course.root / "solutions" / TENSORS / f"{TENSORS}.ipynb"
    alone = grade_notebook(honest, course=arena.course, assignment_name=TENSORS)
    bomb = hostile_notebook(arena, next(a for a in ATTACKS if a.id == "fork-bomb"))
    memory = hostile_notebook(arena, next(a for a in ATTACKS if a.id == "memory-bomb"))
    batch = [grade_notebook(p, course=arena.course, assignment_name=TENSORS) for p in (bomb, honest, memory, honest)]
    for result in (batch[1], batch[3]):
        assert [(c.name, c.status) for c in result.checks if c.question != "canary"] == [
            (c.name, c.status) for c in alone.checks if c.question != "canary"
        ]
        assert result.score == alone.score == alone.max_score


@pytest.mark.parametrize(
    "name, content, says",
    [
        (
            "huge-cell.ipynb",
            lambda: json.dumps(
                {
                    "nbformat": 4,
                    "nbformat_minor": 4,
                    "metadata": {},
                    "cells": [{"cell_type": "code", "source": "x" * 3_000_000, "metadata": {}}],
                }
            ),
            "characters",
        ),
        ("deep.ipynb", lambda: "[" * 100_000 + "]" * 100_000, "nested"),
        ("bad-utf8.ipynb", lambda: b'{"nbformat": 4, "cells": ["\xff\xfe"]}', "UTF-8"),
        (
            "many-cells.ipynb",
            lambda: json.dumps(
                {
                    "nbformat": 4,
                    "nbformat_minor": 4,
                    "metadata": {},
                    "cells": [{"cell_type": "code", "source": "", "metadata": {}}] * 300_000,
                }
            ),
            "cells",
        ),
    ],
)
def test_malformed_giants_are_refused_quickly(arena: Arena, name: str, content: object, says: str) -> None:
    path = arena.submissions / name
    data = content()  # type: ignore[operator]
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    result = grade_notebook(path, course=arena.course, assignment_name=TENSORS)
    assert result.status == "rejected" and says in result.reason
    assert os.path.getsize(path) > 0
