"""Hostile notebooks against the real 02_tensors assignment, in the real sandbox.

Each attack is added to honest content (the reference or the blank template)
and graded. The grader must finish; the score must be what the honest content
earns; the attack's own canary must record that it failed; no sentinel planted
in hidden material may appear anywhere in the result; no file outside the
sandbox may change; and no process may be left behind.
"""

from __future__ import annotations

import ast
import csv
import ctypes
import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from autograder.assets import default_store
from autograder.batch import BatchItem
from autograder.course import Course
from autograder.exports import write_batch_reports
from autograder.grading import grade_notebook
from autograder.results import SubmissionResult
from autograder.submissions import Entry
from autograder.terminal import render_grade
from tests.conftest import ROOT, TENSORS
from tests.hostile.attacks import ATTACKS, TRUST_ATTACKS, VIEW_ATTACKS, Attack

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.slow,
]

SENTINEL = f"SENTINEL-{secrets.token_hex(8)}"
HOSTILE_CONFIG = """
cell_timeout_s = 6
notebook_timeout_s = 90
bridge_timeout_s = 10
checks_timeout_s = 25
memory_mb = 1536
processes = 64
scratch_mb = 256
"""
GRADER_SECRET = "AUTOGRADER_HOSTILE_TEST_SECRET"
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
    os.environ[GRADER_SECRET] = f"{SENTINEL}-environment"  # the grader's own: no kernel may see it
    yield Arena(root, Course(course), submissions, other, out, server.getsockname()[1], hits)
    os.environ.pop(GRADER_SECRET, None)
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
    tests, or a container's kernels, running beside this one are not ours to count)."""
    lines = subprocess.run(["ps", "-eo", "uid=,pid=,args="], capture_output=True, text=True, check=True).stdout
    ours = [line for line in lines.splitlines() if int(line.split()[0]) >= 200_000]
    return [line for line in ours if (sys.prefix in line or "/.venv/" not in line) and not _in_container(line)]


def _in_container(line: str) -> bool:
    try:
        return "docker" in Path(f"/proc/{line.split()[1]}/cgroup").read_text()
    except OSError:
        return False  # gone already


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


START_PATH = "AUTOGRADER_HOSTILE_START"  # "warm": grade each attack through `autograder grade`, a warm start


def graded_by_the_command(arena: Arena, path: Path) -> SubmissionResult:
    """`autograder grade PATH --json`, as a user runs it (as root: a warm start, warm.py)."""
    report = arena.root / f"{path.stem}.result.json"  # outside what the digests cover
    command = [str(Path(sys.executable).parent / "autograder"), "--course", str(arena.course.root), "grade"]
    subprocess.run([*command, str(path), "-a", TENSORS, "--json", str(report)], capture_output=True, check=False)
    return SubmissionResult.from_json(report.read_text())


Graded = tuple[Attack, SubmissionResult, str, str, float]  # the attack, its result, digests before and after, seconds


@pytest.fixture(scope="module", params=[*ATTACKS, *VIEW_ATTACKS, *TRUST_ATTACKS], ids=lambda a: a.id)
def graded(request: pytest.FixtureRequest, arena: Arena) -> Graded:
    attack: Attack = request.param
    path = hostile_notebook(arena, attack)
    before = tree_digest(arena.course.root, arena.out, arena.other.parent)
    started = time.monotonic()
    if os.environ.get(START_PATH) == "warm":  # the whole suite on the warm start, by hand (README: Speed)
        result = graded_by_the_command(arena, path)
    else:
        result = grade_notebook(path, course=arena.course, assignment_name=TENSORS)
    elapsed = time.monotonic() - started
    after = tree_digest(arena.course.root, arena.out, arena.other.parent)
    return attack, result, before, after, elapsed


def test_grader_finishes_with_the_honest_score(graded: Graded) -> None:
    attack, result, *_ = graded
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


def test_the_attack_recorded_its_own_failure(graded: Graded) -> None:
    attack, result, *_ = graded
    canary = next(c for c in result.checks if c.question == "canary")
    if attack.expect == "kernel-died":
        assert "kernel" in canary.message
    elif attack.blocked:
        assert canary.message.replace('"', "'").startswith(f"canary='{attack.blocked}"), canary.message


def test_no_secret_reaches_the_result(graded: Graded) -> None:
    _, result, *_ = graded
    assert SENTINEL not in result.to_json()


def test_nothing_outside_the_sandbox_changed(graded: Graded) -> None:
    _, _, before, after, _ = graded
    assert before == after


def test_no_process_is_left(graded: Graded) -> None:
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


def test_nothing_reached_the_loopback_listener(arena: Arena, graded: Graded) -> None:
    assert arena.listener_hits == []


# Known findings, each kept failing until the grader is fixed: (test, attack id) -> what succeeds.
FINDINGS: dict[tuple[str, str], str] = {}


def known_finding(request: pytest.FixtureRequest, attack: Attack) -> None:
    reason = FINDINGS.get((request.node.originalname, attack.id))
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason))


def test_grading_ends_within_its_bound(graded: Graded) -> None:
    attack, result, _, _, elapsed = graded
    if attack.within_s:
        assert elapsed <= attack.within_s, f"{elapsed:.0f} s"
    if attack.id in ("sleep-when-called", "swallow-interrupts-when-called"):
        assert any("budget" in c.message or "stopped answering" in c.message for c in result.checks)


# what a terminal, a viewer or a spreadsheet would act on: C0 but tab and newline, DEL, C1, bidi controls, surrogates
ACTIVE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def test_every_report_of_the_result_is_inert(graded: Graded, tmp_path: Path) -> None:
    """Whatever the notebook printed, raised or named, the project's own writers keep it as text."""
    attack, result, *_ = graded
    assert not ACTIVE.search(result.to_json())
    write_batch_reports(
        [BatchItem(Entry(attack.id, Path(result.submission)), result, cached=False)], tmp_path, title="t"
    )
    for page in [*tmp_path.rglob("*.html"), *tmp_path.rglob("*.md")]:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text.lower() and not ACTIVE.search(text), page.name
    for sheet in tmp_path.glob("*.csv"):
        for row in csv.reader(io.StringIO(sheet.read_text(encoding="utf-8"))):
            for cell in row:
                assert not ACTIVE.search(cell)
                assert not cell.startswith(("=", "+", "@", "\t", "\r")) and not re.match(r"-[^\d.]", cell), cell
    for report in tmp_path.rglob("results.json"):
        assert not ACTIVE.search(report.read_text(encoding="utf-8"))
    console = Console(file=io.StringIO(), width=160)
    render_grade(result, console)
    assert not ACTIVE.search(console.file.getvalue())  # type: ignore[attr-defined]


def hidden_probe_pieces() -> set[str]:
    """Every 12 characters of a line of a probe the hidden checks send into the kernel, but those
    the checks' own words, hidden or public, also say (`torch.device`, "`double_in_place(v)`")."""
    probes: set[str] = set()
    said: list[str] = []
    checks = [*(ROOT / "assignments" / TENSORS / "public_checks").glob("test_*.py")]
    for check in [*checks, *(ROOT / "solutions" / TENSORS / "hidden_checks").glob("test_*.py")]:
        for node in ast.walk(ast.parse(check.read_text())):  # a call before its arguments
            probe = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "probe"
            if probe and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                probes.add(node.args[0].value)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value not in probes:
                said.append(node.value)
    lines = [line.strip() for probe in probes for line in probe.splitlines()]
    pieces = {line[i : i + 12] for line in lines for i in range(max(len(line) - 11, 1))}
    return {piece for piece in pieces if not any(piece in text for text in said)}


def test_no_hidden_probe_source_reaches_the_result(request: pytest.FixtureRequest, graded: Graded) -> None:
    """No piece of a hidden probe in anything the student reads."""
    attack, result, *_ = graded
    known_finding(request, attack)
    said = [c.message for c in result.checks]
    if result.execution is not None:
        said += [f"{e.exception} {e.message}" for e in result.execution.cell_errors]
    pieces = hidden_probe_pieces()
    assert len(pieces) > 100, "the hidden checks have probes"
    leaked = sorted({piece for piece in pieces for text in said if piece in text})
    assert not leaked, leaked


def test_the_student_is_blamed_not_the_check(request: pytest.FixtureRequest, graded: Graded) -> None:
    """Nothing a notebook does makes a check fail as the check's own fault ("tell your instructor")."""
    attack, result, *_ = graded
    known_finding(request, attack)
    assert [(c.name, c.message) for c in result.checks if c.status == "error"] == []


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


PLANT = """
import ctypes, os, socket, subprocess
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
planted = []
for folder in ('/tmp', '/var/tmp', '/dev/shm', '/run/lock', os.environ['HOME'], os.environ['IPYTHONDIR']):
    try:
        with open(os.path.join(folder, 'planted-TOKEN'), 'w') as handle:
            handle.write('TOKEN')
        planted.append(folder)
    except OSError:
        pass
startup = os.path.join(os.environ['IPYTHONDIR'], 'profile_default', 'startup')
os.makedirs(startup, exist_ok=True)
with open(os.path.join(startup, '00-planted.py'), 'w') as handle:
    handle.write('PLANTED = "TOKEN"\\n')
planted.append('startup')
# a key any uid may read, in the user keyring (kept by the kernel, not by a process)
key = libc.syscall(ctypes.c_long(KEY_ADD), b'user', b'planted-TOKEN', b'TOKEN', ctypes.c_long(len('TOKEN')), ctypes.c_long(-4))
if key > 0 and libc.syscall(ctypes.c_long(KEYCTL), ctypes.c_long(5), ctypes.c_long(key), ctypes.c_long(0x3F3F3F3F)) == 0:
    planted.append('key')
elif key < 0:
    planted.append('key refused: errno %d' % ctypes.get_errno())
if libc.shmget(0x544F4B, 4096, 0o1000 | 0o666) >= 0:
    planted.append('shm')
listener = socket.socket(socket.AF_UNIX)
listener.bind(b'\\0planted-TOKEN')
listener.listen()
subprocess.Popen(['python', '-c', 'import socket, time\\ns = socket.socket(socket.AF_UNIX)\\ns.bind(b"\\\\0planted-TOKEN-2")\\ns.listen()\\ntime.sleep(600)'], start_new_session=True)
canary = planted
"""
LOOK = """
import ctypes, glob, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
files = []
for folder in ('/tmp', '/var/tmp', '/dev/shm', '/run/lock', os.environ['HOME'], os.path.dirname(os.environ['IPYTHONDIR'])):
    files += glob.glob(os.path.join(folder, '**', '*planted*'), recursive=True)
sockets = []
for name in (b'\\0planted-TOKEN', b'\\0planted-TOKEN-2'):
    try:
        socket.socket(socket.AF_UNIX).connect(name)
        sockets.append(name.decode())
    except OSError:
        pass
keys = []
for line in open('/proc/keys'):
    if 'TOKEN' in line:
        buffer = ctypes.create_string_buffer(16)
        size = libc.syscall(ctypes.c_long(KEYCTL), ctypes.c_long(11), ctypes.c_long(int(line.split()[0], 16)), buffer, ctypes.c_long(16))
        keys.append((line.split()[-2].rstrip(':'), buffer.raw[:max(size, 0)].decode(errors='replace')))
canary = dict(files=files, startup='PLANTED' in globals(), sockets=sockets, shm=libc.shmget(0x544F4B, 0, 0) >= 0, keys=keys)
"""
_KEY_CALLS = {"x86_64": {"KEY_ADD": 248, "KEYCTL": 250}, "aarch64": {"KEY_ADD": 217, "KEYCTL": 219}}


def _with(source: str, token: str) -> str:
    numbers = _KEY_CALLS.get(os.uname().machine, _KEY_CALLS["x86_64"])
    for name, number in numbers.items():
        source = source.replace(name, str(number))
    return source.replace("TOKEN", token)


@pytest.fixture(scope="module")
def carried(arena: Arena) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """What one submission planted (files, an IPython startup file, a key, SysV memory, abstract
    sockets) and what the next one, graded after it, found of that."""
    token = f"mark{secrets.token_hex(6)}"
    try:
        _, planted = grade_with_canary(arena, "plant", "solutions", _with(PLANT, token))
        _, found = grade_with_canary(arena, "look", "solutions", _with(LOOK, token))
        yield planted, found
    finally:
        forget_keys(token)


def forget_keys(token: str) -> None:
    """Invalidate what a test planted in the kernel's keyrings (readable by all, so root may)."""
    libc = ctypes.CDLL(None, use_errno=True)
    number = _KEY_CALLS.get(os.uname().machine, _KEY_CALLS["x86_64"])["KEYCTL"]
    for line in Path("/proc/keys").read_text().splitlines():
        if token in line:
            libc.syscall(ctypes.c_long(number), ctypes.c_long(21), ctypes.c_long(int(line.split()[0], 16)))


def test_no_file_socket_or_memory_carries_over_to_the_next_submission(
    carried: tuple[list[str], dict[str, Any]],
) -> None:
    planted, found = carried
    assert {"/tmp", "/dev/shm", "startup", "shm"} <= set(planted), planted
    assert (found["files"], found["startup"], found["sockets"], found["shm"]) == ([], False, [], False), found


def test_no_kernel_key_carries_over_to_the_next_submission(carried: tuple[list[str], dict[str, Any]]) -> None:
    """The kernel keeps a uid's keyrings after its last process: the sandbox's
    system-call filter refuses the key calls, so nothing is planted or read."""
    planted, found = carried
    assert f"key refused: errno {errno.EPERM}" in planted, planted
    assert found["keys"] == [], found


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
