"""The course's paths on a student's machine: off root, the kernel gets the
grading view through an unprivileged user namespace (isolation/user_namespace.py),
and where none can be made the checks needing data the machine lacks are
`environment`, saying so, never the student's failure.

Every test here starts the grader as a user other than root (CI runs as root):
a uid of no account, through setpriv, or this process's own user where it is
not root. Where that user cannot run the checkout, the tests skip and say why.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autograder.course import Course
from autograder.environment import MissingData
from autograder.results import SubmissionResult
from tests import other_user
from tests.conftest import ROOT, write_notebook
from tests.other_user import OtherUser

if sys.platform != "linux":
    pytest.skip("user namespaces are Linux's", allow_module_level=True)

student, user_namespaces = other_user.student, other_user.user_namespaces  # the fixtures, for this module

WARMUP = "warmup_04"
KAGGLE_INPUTS = Course(ROOT).get(WARMUP).config.kaggle_inputs
FIGURE = "outputs/warmup_inference_viz.png"
SWITCH = "AUTOGRADER_NO_USER_NAMESPACE"


ISOLATION = """
import json, sys
from autograder.isolation import IsolationRefusedError, isolation_here, open_workspace
from autograder.course import Course
config = Course(__import__("pathlib").Path(sys.argv[1])).get("warmup_04").config
with open_workspace(config) as workspace:
    shown = {"isolation": workspace.isolation, "missing": list(workspace.missing)}
try:
    with open_workspace(config, hidden_material=[__import__("pathlib").Path(sys.argv[1]) / "solutions"]):
        shown["hidden"] = "allowed"
except IsolationRefusedError as error:
    shown["hidden"] = str(error)
print(json.dumps({"kind": isolation_here().kind, **shown}))
"""

# Run as the student inside a user namespace of its own whose limit on user
# namespaces is 0 (as `sysctl user.max_user_namespaces=0` makes a machine): the
# grader must find out by trying, as on a machine where they are off.
WITHOUT_USER_NAMESPACES = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.getuid(), os.getgid()
if libc.unshare(0x10000000) != 0:
    raise OSError(ctypes.get_errno(), "unshare")
for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
    with open(f"/proc/self/{name}", "w") as handle:
        handle.write(text)
with open("/proc/sys/user/max_user_namespaces", "w") as handle:
    handle.write("0")
os.execv(sys.argv[1], sys.argv[1:])
"""


def isolation_as(student: OtherUser, *wrapper: str, **env: str) -> dict[str, Any]:
    done = student.run(*wrapper, sys.executable, "-c", ISOLATION, str(ROOT), timeout=120, **env)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


@pytest.mark.usefixtures("user_namespaces")
def test_off_root_the_kernel_gets_the_view_and_hidden_checks_are_still_refused(student: OtherUser) -> None:
    shown = isolation_as(student)
    assert shown["kind"] == "user-namespace" and shown["isolation"].startswith("user-namespace ("), shown
    assert shown["missing"] == [], "the view shows every Kaggle path"
    assert "--waive-isolation" in shown["hidden"], "the student's own code runs as the grader's user"


def test_where_user_namespaces_are_off_the_grader_finds_out_by_trying(student: OtherUser) -> None:
    wrapper = (sys.executable, "-c", WITHOUT_USER_NAMESPACES)
    if student.run(*wrapper, "/bin/true").returncode != 0:
        pytest.skip("this machine cannot make the user namespace that turns user namespaces off")
    shown = isolation_as(student, *wrapper)
    assert shown["kind"] == "none", shown
    assert "user namespaces do not work here" in shown["isolation"], "the reason is the machine's own"
    expected = [f"/kaggle/input/{path}" for path in KAGGLE_INPUTS] + ["/kaggle/working"]
    assert shown["missing"] == [p for p in expected if not os.path.exists(p)], shown


def test_the_variable_forces_the_plain_start(student: OtherUser) -> None:
    shown = isolation_as(student, **{SWITCH: "1"})
    assert shown["kind"] == "none" and f"{SWITCH}=1" in shown["isolation"], shown
    assert "/kaggle/working" in shown["missing"] or os.path.exists("/kaggle/working")


LOOK = """
import errno, json, os, socket
seen = {"uid": os.getuid(), "working": os.path.realpath("/kaggle/working") == os.getcwd()}
for layout in LAYOUTS:
    path = os.path.join("/kaggle/input", layout)
    seen[layout] = sorted(os.listdir(path)) if os.path.isdir(path) else None
connection = socket.socket()
connection.settimeout(5)
try:
    connection.connect(("127.0.0.1", PORT))
    seen["network"] = "connected"
except OSError as error:
    seen["network"] = errno.errorcode.get(error.errno, str(error))
for name, path in (("root", "/written-by-the-notebook"), ("host_folder", HOST_FOLDER + "/written")):
    try:
        open(path, "w").close()
        seen[name] = "written"
    except OSError as error:
        seen[name] = errno.errorcode.get(error.errno, str(error))
# what the kernel could do to the view itself: it holds no capability, so no mount, remount or namespace
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def refused(code):
    return "done" if code == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
seen["remount_root"] = refused(libc.mount(None, b"/", None, 32 | 4096, None))  # MS_REMOUNT | MS_BIND, writable
seen["mount_tmpfs"] = refused(libc.mount(b"tmpfs", b"/usr", b"tmpfs", 0, None))
seen["own_user_namespace"] = refused(libc.unshare(0x10000000))
seen["capabilities"] = sorted({l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapPrm", "CapEff"))})
seen["processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
runtime = os.path.dirname(os.environ["IPYTHONDIR"])
seen["writable"] = sorted(
    point for point, options in ((l.split()[4], l.split()[5].split(",")) for l in open("/proc/self/mountinfo"))
    if "rw" in options and point not in (os.getcwd(), runtime, "/tmp", "/var/tmp", "/run/lock", "/dev/shm", "/proc")
    and not point.startswith("/dev/") and point != "/dev"
)
seen = json.dumps(seen)
"""

RUN_IN_WORKSPACE = """
import json, sys
from pathlib import Path
import nbformat
from autograder.course import Course
from autograder.execution import executed_notebook
from autograder.isolation import open_workspace
config = Course(Path(sys.argv[1])).get("warmup_04").config.with_overrides(cell_timeout_s=60)
notebook = nbformat.read(sys.argv[2], as_version=4)
with open_workspace(config) as workspace, executed_notebook(notebook, workspace=workspace, config=config) as run:
    record, kernel = run
    errors = [f"{e.exception}: {e.message}" for e in record.cell_errors]
    print(json.dumps({"isolation": workspace.isolation, "errors": errors, "seen": json.loads(kernel.fetch("seen"))}))
"""


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    """A server on 127.0.0.1 that notes every connection it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list[str] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                connection, address = server.accept()
                accepted.append(str(address))
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    done.set()
    thread.join()
    server.close()


@pytest.mark.slow
@pytest.mark.usefixtures("user_namespaces")
def test_the_kernel_sees_both_kaggle_layouts_no_network_and_a_read_only_root(
    student: OtherUser, listener: tuple[int, list[str]]
) -> None:
    port, accepted = listener
    host_folder = student.home / "host-folder"  # the student's, on the host: not in the view
    host_folder.mkdir()
    os.chown(host_folder, student.uid, student.gid)
    code = LOOK.replace("LAYOUTS", repr(list(KAGGLE_INPUTS))).replace("PORT", str(port))
    notebook = write_notebook(student.home / "look.ipynb", code.replace("HOST_FOLDER", repr(str(host_folder))))
    os.chown(notebook, student.uid, student.gid)
    done = student.run(sys.executable, "-c", RUN_IN_WORKSPACE, str(ROOT), str(notebook), timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = json.loads(done.stdout)
    assert shown["isolation"].startswith("user-namespace") and not shown["errors"], shown
    seen = shown["seen"]
    for layout in KAGGLE_INPUTS:
        assert seen[layout] and "seg_test" in seen[layout], (layout, seen)
    assert seen["uid"] == student.uid and seen["working"], seen
    assert seen["network"] != "connected" and not accepted, seen
    assert seen["root"] == "EROFS", seen
    assert seen["host_folder"] == "ENOENT" and not (host_folder / "written").exists(), seen
    assert (seen["remount_root"], seen["mount_tmpfs"], seen["own_user_namespace"]) == ("EPERM",) * 3, seen
    assert seen["capabilities"] == ["0000000000000000"], "no capability survives the kernel's exec"
    assert seen["processes"][0] == 1, "PID 1 of its own PID namespace: no process of the host is seen"
    assert seen["writable"] == [], "the system, the environment, the assets and / are read-only mounts"


# The real submission: one student's warmup_04, checked as that student would
# (`autograder check`: public checks only), once per branch.

CHECK = """
import sys
from pathlib import Path
from autograder.course import Course
from autograder.grading import GradingOptions, grade_notebook
options = GradingOptions(public_only=True)
print(grade_notebook(Path(sys.argv[2]), course=Course(Path(sys.argv[1])), options=options).to_json())
"""


def _checked(student: OtherUser, submissions: Path, **env: str) -> SubmissionResult:
    notebook = student.give(submissions / "amunzh" / "assignments_04" / "warmup_04.ipynb")
    done = student.python(CHECK, str(ROOT), str(notebook), **env)
    assert done.returncode == 0, done.stderr[-3000:]
    return SubmissionResult.from_json(done.stdout)


@pytest.fixture(scope="module")
def checked_in_the_view(student: OtherUser, user_namespaces: None, real_submissions: Path) -> SubmissionResult:
    return _checked(student, real_submissions)


@pytest.fixture(scope="module")
def checked_without_the_view(student: OtherUser, real_submissions: Path) -> SubmissionResult:
    return _checked(student, real_submissions, **{SWITCH: "1"})


def _data_cells(submissions: Path) -> frozenset[int]:
    """The cells of the real notebook whose code uses the Kaggle paths."""
    import nbformat

    notebook = nbformat.read(submissions / "amunzh" / "assignments_04" / "warmup_04.ipynb", as_version=4)
    code = [cell.source if cell.cell_type == "code" else None for cell in notebook.cells]
    return MissingData.of(code, [f"/kaggle/input/{p}" for p in KAGGLE_INPUTS] + ["/kaggle/working"]).cells


@pytest.mark.slow
def test_a_real_submission_checked_off_root_finds_the_kaggle_paths(
    checked_in_the_view: SubmissionResult, real_submissions: Path
) -> None:
    result = checked_in_the_view
    assert result.status == "graded" and result.isolation.startswith("user-namespace"), result.reason
    assert result.execution is not None
    data_cells = _data_cells(real_submissions)
    assert data_cells, "the notebook reads /kaggle/input"
    assert not [e for e in result.execution.cell_errors if e.cell_index in data_cells], result.execution.cell_errors
    assert not [c for c in result.checks if "not written" in c.message], "the figure was made in the view"
    # amunzh's Inference Q4 figure draws another picture's top 3 (tests/data/real_submissions_review.toml):
    # it fails on what it shows, and every other public check passes
    (figure,) = [c for c in result.checks if c.question == "i4"]
    assert figure.status == "failed" and "3 bars" in figure.message, figure
    others = [(c.name, c.status, c.message) for c in result.checks if c.question != "i4"]
    assert all(status == "passed" for _, status, _ in others), others


@pytest.mark.slow
def test_without_the_view_the_missing_data_is_the_machines_fault_and_says_so(
    checked_without_the_view: SubmissionResult,
) -> None:
    result = checked_without_the_view
    assert result.status == "graded" and result.isolation.startswith("none ("), result.reason
    assert f"{SWITCH}=1" in result.isolation
    statuses = {c.name: (c.status, c.message) for c in result.checks}
    assert not [s for s in statuses.values() if s[0] == "failed"], "nothing is the student's failure"
    blamed = [message for status, message in statuses.values() if status == "environment"]
    assert blamed, statuses
    missing = "/kaggle/input/datasets/puneet6060/intel-image-classification is not on this machine"
    assert all(missing in message and "on Kaggle" in message for message in blamed), blamed
    assert any(FIGURE in message for message in blamed), blamed


DATA_CHECKS = """
import pytest

@pytest.mark.question("q1")
def test_calls_code_reading_the_data(student):
    student.call("count_pictures")

@pytest.mark.question("q2")
def test_calls_the_students_own_bug(student):
    student.call("broken")

@pytest.mark.question("q3")
def test_value_of_the_cell_reading_the_data(student):
    student.fetch("pictures")
"""


@pytest.mark.slow
def test_without_the_view_only_code_using_the_missing_data_is_excused(student: OtherUser) -> None:
    course = student.home / "course"
    checks = course / "assignments" / "demo" / "public_checks"
    checks.mkdir(parents=True)
    (checks / "test_demo.py").write_text(DATA_CHECKS)
    (course / "assignments" / "demo" / "assignment.toml").write_text(
        '[kaggle_inputs]\n"tiny-data" = "intel-image-classification"\n'
    )
    notebook = write_notebook(
        course / "assignments" / "demo" / "demo.ipynb",
        "import os\n# on Kaggle: /kaggle/working is the working folder\nDATA = '/kaggle/input/tiny-data/seg_test'",
        "def count_pictures():\n    return len(os.listdir(DATA))",
        "def broken():\n    raise ValueError('my own bug')",
        "pictures = count_pictures()",
    )
    for path in [course, *course.rglob("*")]:
        os.chown(path, student.uid, student.gid)
    done = student.python(CHECK, str(course), str(notebook), **{SWITCH: "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    result = SubmissionResult.from_json(done.stdout)
    by_name = {c.name: c for c in result.checks}
    reading, own, value = (
        by_name[f"test_{name}"]
        for name in ("calls_code_reading_the_data", "calls_the_students_own_bug", "value_of_the_cell_reading_the_data")
    )
    assert reading.status == "environment" and "/kaggle/input/tiny-data is not on this machine" in reading.message
    assert own.status == "failed", own
    assert value.status == "environment" and "cell 3 (FileNotFoundError" in value.message, value
