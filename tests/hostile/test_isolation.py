"""The sandbox's view, checked from inside: the kernel sees exactly the written
list of SECURITY.md ("The kernel's view") and nothing of the host beside it;
its share of the cores holds beside a submission of spinning processes; and
the machine's own layout (a course and assets under /tmp) never costs a student.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import nbformat
import pytest

from autograder.config import AssignmentConfig
from autograder.course import Course
from autograder.execution import executed_notebook
from autograder.grading import grade_notebook
from autograder.isolation import open_workspace
from tests.conftest import ROOT, TENSORS, write_notebook

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.slow,
]

SENTINEL = f"VIEW-SENTINEL-{secrets.token_hex(8)}"

# SECURITY.md's list, written here again on purpose: the test must not read it from the code it checks.
SYSTEM_MOUNTS = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}
ETC_MOUNTS = {
    f"/etc/{n}" for n in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "mime.types")
}
DEVICE_MOUNTS = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}
PRIVATE_MOUNTS = {"/", "/proc", "/dev", "/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/assets"}
TOP_LEVEL = {
    "assets",
    "bin",
    "dev",
    "etc",
    "lib",
    "lib32",
    "lib64",
    "libx32",
    "proc",
    "run",
    "sbin",
    "tmp",
    "usr",
    "var",
}

LOOK_AROUND = r"""
import json, os
mounts = [line.split()[4] for line in open('/proc/self/mountinfo')]
skip = {'/usr', '/proc', '/dev', '/sys', '/etc', '/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32', PREFIX}
found, walked = [], 0
for folder, subfolders, files in os.walk('/'):
    subfolders[:] = [d for d in subfolders if os.path.join(folder, d) not in skip]
    for name in files:
        walked += 1
        try:
            with open(os.path.join(folder, name), 'rb') as handle:
                if SENTINEL.encode() in handle.read(1_000_000):
                    found.append(os.path.join(folder, name))
        except OSError:
            pass
view = json.dumps({'mounts': mounts, 'top': sorted(os.listdir('/')), 'found': found, 'walked': walked,
                   'etc': sorted(os.listdir('/etc')), 'cwd': os.getcwd()})
"""


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """Sentinels where a careless sandbox would show them: a class folder outside
    /tmp, a course's git history, a results folder, the checkout."""
    srv = Path(f"/srv/autograder-view-{secrets.token_hex(4)}")
    places = [srv / "class" / "carol" / "02_tensors.ipynb", srv / "results" / "carol.json"]
    course = tmp_path_factory.mktemp("course")
    for path in places:
        path.parent.mkdir(parents=True)
        path.write_text(SENTINEL)
    (course / "solutions").mkdir()
    (course / "solutions" / "answer.txt").write_text(SENTINEL)
    subprocess.run(["git", "init", "-q", str(course)], check=True)
    subprocess.run(["git", "-C", str(course), "add", "."], check=True)
    git = ["git", "-C", str(course), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "s"]
    subprocess.run(git, check=True)
    (course / "solutions" / "answer.txt").unlink()  # only the git history holds it now
    in_checkout = ROOT / f".view-sentinel-{secrets.token_hex(4)}"
    in_checkout.write_text(SENTINEL)
    yield [*places, course / ".git", in_checkout]
    shutil.rmtree(srv, ignore_errors=True)
    in_checkout.unlink()


def look_around() -> tuple[dict[str, object], str]:
    notebook = nbformat.v4.new_notebook()
    code = LOOK_AROUND.replace("PREFIX", repr(os.path.realpath(sys.prefix))).replace("SENTINEL", repr(SENTINEL))
    notebook.cells = [nbformat.v4.new_code_cell(code)]
    config = AssignmentConfig(cell_timeout_s=120)
    with open_workspace(config) as workspace, executed_notebook(notebook, workspace=workspace, config=config) as run:
        report, student = run
        assert not report.cell_errors, report.cell_errors
        return json.loads(student.fetch("view")), str(workspace.workdir)


def test_the_kernel_sees_only_the_written_list(planted: list[Path]) -> None:
    view, workdir = look_around()
    environment = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)} - {"/usr", "/usr/local"}
    allowed = SYSTEM_MOUNTS | ETC_MOUNTS | DEVICE_MOUNTS | PRIVATE_MOUNTS | environment
    allowed |= {workdir, str(Path(workdir).parent / "runtime")}
    unexpected = [m for m in view["mounts"] if m not in allowed and not m.startswith("/dev/nvidia")]  # type: ignore[attr-defined]
    assert not unexpected, f"mounts beyond the written list: {unexpected}"
    environment_tops = {Path(p).parts[1] for p in environment}
    assert set(view["top"]) <= TOP_LEVEL | environment_tops, view["top"]  # type: ignore[arg-type]
    assert set(view["etc"]) <= {"passwd", "group", "hosts", "nsswitch.conf", "hostname"} | {
        Path(m).name for m in ETC_MOUNTS
    }, view["etc"]  # type: ignore[arg-type]
    assert view["found"] == [], f"sentinels the kernel could read: {view['found']}"
    assert view["walked"] > 0 and view["cwd"] == workdir


def test_a_reference_grades_with_course_and_assets_under_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The public assets are shown at /assets whatever their host path: a private
    /tmp in the sandbox must not cover a course or assets that live under /tmp."""
    name = "04_cnn_inference"
    course = tmp_path / "course"
    for part in ("assignments", "solutions"):
        shutil.copytree(ROOT / part / name, course / part / name)
        shutil.copytree(ROOT / part / "datasets", course / part / "datasets")  # the asset modules its checks read with
    shutil.copy(ROOT / "assignments" / "assets.toml", course / "assignments")
    assets = tmp_path / "assets"
    shutil.copytree(ROOT / ".assets", assets, symlinks=True)
    monkeypatch.setenv("AUTOGRADER_ASSETS", str(assets))
    result = grade_notebook(course / "solutions" / name / f"{name}.ipynb", course=Course(course), assignment_name=name)
    assert result.status == "graded", result.reason
    assert result.score == result.max_score, [c for c in result.checks if c.status != "passed"]


SPINNERS = """
import subprocess, sys
spinners = [subprocess.Popen([sys.executable, '-c', 'while True: pass'], start_new_session=True) for _ in range(150)]
"""
MEASURE = """
import resource, time
start, cpu = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
while time.monotonic() - start < 4:
    pass
share = (resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu) / (time.monotonic() - start)
"""


def test_an_honest_kernel_keeps_its_share_of_the_cores_beside_150_spinners(tmp_path: Path) -> None:
    hostile = write_notebook(tmp_path / "spin.ipynb", SPINNERS, "import time\ntime.sleep(600)")
    # another grader process, so that the spinners are another submission's, in its own cgroups
    spinning = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autograder",
            "grade",
            str(hostile),
            "-a",
            TENSORS,
            "--cell-timeout",
            "600",
            "--json",
            str(tmp_path / "r.json"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and _sandboxed_pythons() < 150:
            time.sleep(0.5)
        assert _sandboxed_pythons() >= 150, "the spinners did not start"
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_code_cell(MEASURE)]
        settings = AssignmentConfig(cell_timeout_s=60)
        with (
            open_workspace(settings) as workspace,
            executed_notebook(notebook, workspace=workspace, config=settings) as run,
        ):
            share = run[1].fetch("share")
            assert _sandboxed_pythons() >= 150, "the spinners ended before the measurement did"
    finally:
        spinning.terminate()  # the grader tidies its sandbox up on SIGTERM
        try:
            spinning.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spinning.kill()
            spinning.wait()
    assert share >= 0.4, f"the honest kernel got {share:.0%} of a core beside 150 spinners"


def _sandboxed_pythons() -> int:
    lines = subprocess.run(["ps", "-eo", "uid=,args="], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in lines.splitlines() if int(line.split()[0]) >= 200_000 and "while True" in line)


NAP = "open('started', 'w').close()\nimport time\ntime.sleep(300)"
FILL_AND_NAP = "open('big', 'wb').write(b'x' * 50_000_000)\nopen('started', 'w').close()\nimport time\ntime.sleep(300)"


def test_a_dead_graders_leftovers_are_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    sandboxes = Path(os.environ.get("AUTOGRADER_SANDBOX_DIR", "/var/lib/autograder/sandboxes"))
    live = _grader_running(tmp_path / "live.ipynb", NAP, sandboxes.glob, "s*")
    dead = _grader_running(tmp_path / "dead.ipynb", FILL_AND_NAP, sandboxes.glob, "s*")
    try:
        dead_home, live_home = dead[1], live[1]
        dead[0].kill()  # SIGKILL: it tidies nothing up
        dead[0].wait()
        cgroups = [Path("/sys/fs/cgroup") / c / "autograder" / dead_home.name for c in ("memory", "pids")]
        assert dead_home.exists() and all(c.is_dir() for c in cgroups), "the killed grader left nothing to remove"
        tiny = write_notebook(tmp_path / "x.ipynb", "x = 1")
        command = [sys.executable, "-m", "autograder", "grade", str(tiny), "-a", TENSORS]
        another = subprocess.run([*command, "--json", str(tmp_path / "x.json")], capture_output=True, text=True)
        assert another.returncode == 0, another.stderr
        assert not dead_home.exists() and not any(c.exists() for c in cgroups)
        assert str(dead_home) not in Path("/proc/mounts").read_text()
        assert live_home.exists() and (live_home / "work" / "started").exists(), "a live grader's sandbox was touched"
        assert live[0].poll() is None
    finally:
        for grader, _ in (live, dead):
            grader.terminate()
            grader.wait(timeout=60)
    assert not live[1].exists(), "the live grader did not tidy up its own sandbox on SIGTERM"


def test_a_dead_graders_fresh_user_is_killed_and_its_folder_removed(tmp_path: Path) -> None:
    """Without the sandbox a killed grader's kernel outlives it, as a fresh uid: the next grader kills it."""
    course = tmp_path / "course"  # under pytest's 0700 folder: no other user reaches the solutions
    for part in ("assignments", "solutions"):
        shutil.copytree(ROOT / part / TENSORS, course / part / TENSORS)
    env = {**os.environ, "AUTOGRADER_CGROUP_ROOT": str(tmp_path / "no-cgroups")}
    temp = Path(tempfile.gettempdir())
    live = _grader_running(tmp_path / "live.ipynb", NAP, temp.glob, "autograder-user-*", course=course, env=env)
    dead = _grader_running(tmp_path / "dead.ipynb", NAP, temp.glob, "autograder-user-*", course=course, env=env)
    try:
        dead_uid = int((dead[1] / "student-uid").read_text())
        dead[0].kill()
        dead[0].wait()
        assert dead[1].exists() and _processes_of(dead_uid), "the killed grader left nothing behind"
        tiny = write_notebook(tmp_path / "x.ipynb", "x = 1")
        command = [sys.executable, "-m", "autograder", "--course", str(course), "grade", str(tiny), "-a", TENSORS]
        another = subprocess.run(
            [*command, "--json", str(tmp_path / "x.json")], capture_output=True, text=True, env=env
        )
        assert another.returncode == 0, another.stderr
        assert json.loads((tmp_path / "x.json").read_text())["isolation"].startswith("user (")
        assert not dead[1].exists() and not _processes_of(dead_uid)
        assert (live[1] / "work" / "started").exists() and live[0].poll() is None, "a live grader's kernel was touched"
    finally:
        for grader, _ in (live, dead):
            grader.terminate()
            grader.wait(timeout=60)
    assert not live[1].exists(), "the live grader did not tidy up its own folder on SIGTERM"


def _processes_of(uid: int) -> list[str]:
    lines = subprocess.run(["ps", "-eo", "uid=,pid="], capture_output=True, text=True, check=True).stdout
    return [line for line in lines.splitlines() if int(line.split()[0]) == uid]


def _grader_running(
    path: Path,
    code: str,
    glob: Callable[[str], Iterable[Path]],
    pattern: str,
    *,
    course: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    """A grader grading `code`, once the notebook runs: the process and its
    workspace folder (the new one of `glob(pattern)` whose notebook started)."""
    before = set(glob(pattern))
    write_notebook(path, code)
    courses = ["--course", str(course)] if course else []
    command = [sys.executable, "-m", "autograder", *courses, "grade", str(path), "-a", TENSORS, "--cell-timeout", "400"]
    grader = subprocess.Popen([*command, "--json", str(path.with_suffix(".json"))], stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        started = [home for home in set(glob(pattern)) - before if (home / "work" / "started").exists()]
        if started:
            return grader, started[0]
        assert grader.poll() is None, "the grader ended before its notebook ran"
        time.sleep(0.2)
    grader.kill()
    raise AssertionError("the notebook never started")


READ_HIDDEN = "hidden = open(HIDDEN).read()"


@pytest.fixture(scope="module")
def exposed_course() -> Iterator[Path]:
    """A course where every user may read the solutions (a world-readable folder)."""
    course = Path(f"/srv/autograder-course-{secrets.token_hex(4)}")
    for part in ("assignments", "solutions"):
        shutil.copytree(ROOT / part / TENSORS, course / part / TENSORS)
    for folder in (course, *course.rglob("*")):
        folder.chmod(0o755 if folder.is_dir() else 0o644)
    yield course
    shutil.rmtree(course, ignore_errors=True)


def grade_without_cgroups(course: Path, notebook: Path, *flags: str) -> dict[str, object]:
    """`autograder grade` on a host with no cgroup v1 (simulated: the cgroup root is elsewhere)."""
    out = notebook.with_suffix(".json")
    env = {**os.environ, "AUTOGRADER_CGROUP_ROOT": str(notebook.parent / "no-cgroups")}
    command = [sys.executable, "-m", "autograder", "--course", str(course), "grade", str(notebook), "-a", TENSORS]
    subprocess.run([*command, *flags, "--json", str(out)], env=env, capture_output=True, check=False)
    result: dict[str, object] = json.loads(out.read_text())
    return result


def test_without_the_sandbox_root_runs_the_kernel_as_a_fresh_user(tmp_path: Path, exposed_course: Path) -> None:
    course = tmp_path / "course"  # under pytest's 0700 folder: no other user reaches it
    shutil.copytree(exposed_course, course)
    hidden = course / "solutions" / TENSORS / "hidden_checks" / "test_hidden.py"
    reference = json.loads((course / "solutions" / TENSORS / f"{TENSORS}.ipynb").read_text())
    reference["cells"].append(
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": READ_HIDDEN.replace("HIDDEN", repr(str(hidden))),
        }
    )
    notebook = tmp_path / "reader.ipynb"
    notebook.write_text(json.dumps(reference))
    result = grade_without_cgroups(course, notebook)
    assert result["status"] == "graded" and str(result["isolation"]).startswith("user ("), result
    assert "cgroup" in str(result["isolation"]), "the reason must be the machine's, not 'not root'"
    assert result["score"] == result["max_score"] == 23
    errors = result["execution"]["cell_errors"]  # type: ignore[index]
    assert [e["exception"] for e in errors] == ["PermissionError"], errors


def test_without_the_sandbox_readable_solutions_are_refused_unless_waived(tmp_path: Path, exposed_course: Path) -> None:
    notebook = tmp_path / "honest.ipynb"
    shutil.copy(exposed_course / "solutions" / TENSORS / f"{TENSORS}.ipynb", notebook)
    refused = grade_without_cgroups(exposed_course, notebook)
    assert refused["status"] == "error" and "--waive-isolation" in str(refused["reason"]), refused
    assert "solutions" in str(refused["reason"]) and "not root" not in str(refused["reason"])
    waived = grade_without_cgroups(exposed_course, notebook, "--waive-isolation")
    assert waived["status"] == "graded" and waived["score"] == 23
    assert "waived: --waive-isolation" in str(waived["isolation"])


def test_without_the_sandbox_a_readable_git_history_is_refused(tmp_path: Path, exposed_course: Path) -> None:
    """The solutions folder root's alone is not enough where the course's git history holds them too."""
    course = Path(f"/srv/autograder-git-course-{secrets.token_hex(4)}")
    try:
        shutil.copytree(exposed_course, course)
        subprocess.run(["git", "init", "-q", str(course)], check=True)
        (course / "solutions").chmod(0o700)
        (course / ".git").chmod(0o755)
        notebook = tmp_path / "honest.ipynb"
        shutil.copy(course / "solutions" / TENSORS / f"{TENSORS}.ipynb", notebook)
        refused = grade_without_cgroups(course, notebook)
        assert refused["status"] == "error" and ".git" in str(refused["reason"]), refused
    finally:
        shutil.rmtree(course, ignore_errors=True)


def test_the_fork_server_survives_a_strangers_bytes() -> None:
    """Garbage, a huge declared length and a silent connection each cost their
    own connection only: the next kernel still starts."""
    from autograder.isolation.namespaces import ForkServer

    server = ForkServer.get()
    if server is None:
        pytest.skip(f"no fork server here: {ForkServer._failed}")
    for payload in (b"\xff\x00\x00\x01" + b"x" * 64, b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b""):
        with socket.socket(socket.AF_UNIX) as stranger:
            stranger.connect(str(server.socket))
            if payload:
                socket.send_fds(stranger, [b"\0"], [0, 1, 2])
                stranger.sendall(payload)
    view, _ = look_around()
    assert view["found"] == [] and server.process.poll() is None
