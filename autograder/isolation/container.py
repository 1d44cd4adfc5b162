"""Grading in containers: each submission in a Docker container of its own.

Host side: `grade_in_container` runs `autograder grade --json -` on one
notebook in the grading image (see the Dockerfile) with `docker run`: no
network, a read-only root, memory, pids and CPU limits, almost no
capabilities. The notebook goes in as the grader's own copy, read under
staging's rule (never a link or a FIFO the student made), read-only, into a
folder only root can enter; the result comes back on stdout as the engine's JSON (never pickle);
the container is removed on every path. Each container is labelled with the
process that started it, so that `remove_orphans` can remove what a grader
that died left behind.

Inside the image (`AUTOGRADER_IN_CONTAINER=1`, the grader as root):
`container_workspace` puts the working folder on the tmpfs the container
provides and starts the kernel through entry.py as a fresh unprivileged uid.
The namespace sandbox (namespaces.py) cannot be built in an unprivileged
container; the container is the outer boundary instead.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from autograder.assets import default_store
from autograder.config import AssignmentConfig
from autograder.errors import NotANotebookError, UsageError
from autograder.isolation.processes import kill_everything_of
from autograder.isolation.workspace import KernelLaunch, Workspace, entry_argv, fresh_uid, kernel_env, privilege_drop
from autograder.results import SubmissionResult
from autograder.staging import read_regular
from autograder.ungraded import ungraded_result

OWNER_LABEL = "autograder.owner"  # host/pid/start time of the process that started the container
GROUP_LABEL = "autograder.group"  # its process group: a whole run's containers, workers included
SUBMISSIONS = "/submission"  # in the image: root-only (0700)
MOUNTED_COURSE = "/opt/autograder/instructor/course"  # in the image: under a root-only folder
WORKDIR = Path("/work")
KAGGLE = Path("/kaggle")  # Kaggle's paths, as links the grader makes on a tmpfs
_ID_AND_OWNER = '{{.ID}} {{.Label "autograder.owner"}}'
# What the grader, root in the container, still needs: hand files to the
# submission's user, become it, stop its processes, clean its folders.
_CAPABILITIES = ("CHOWN", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE", "FOWNER")


@dataclass(frozen=True)
class ContainerSettings:
    """Which image grades, and the limits of each submission's container."""

    image: str
    gpus: str | None = None  # passed to `docker run --gpus` ("all", "device=0")
    memory: str = "6g"  # grader and kernel together; no swap beyond it
    cpus: float = 2.0
    pids: int = 1024
    scratch: str = "1g"  # each of /tmp and the working folder (tmpfs, counted as memory)
    course: Path | None = None  # an instructor's course folder, mounted read-only in place of the image's
    timeout_s: float = 3600.0  # wall clock for the whole container, checks included
    image_id: str = ""  # part of batch cache keys: a rebuilt image regrades


def in_container() -> bool:
    """True when this grader runs as root inside the grading image."""
    return os.environ.get("AUTOGRADER_IN_CONTAINER") == "1" and sys.platform == "linux" and os.geteuid() == 0


def image_id(image: str) -> str:
    """The local image's id; a missing image or docker command is a usage error."""
    if shutil.which("docker") is None:
        raise UsageError("--docker needs the docker command on this machine")
    found = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        why = (found.stderr.strip().splitlines() or ["docker image inspect failed"])[-1]
        raise UsageError(f"no Docker image {image!r} here ({why}); build it first (README: Docker)")
    return found.stdout.strip()


def docker_command(
    settings: ContainerSettings,
    submission: Path,
    *,
    name: str,
    assignment: str | None = None,
    cell_timeout_s: float | None = None,
    notebook_timeout_s: float | None = None,
    public_only: bool = False,
) -> list[str]:
    """The `docker run` command line that grades one notebook (nothing is run here)."""
    inside = f"{SUBMISSIONS}/{_safe_name(submission.name)}"
    command = [
        "docker",
        "run",
        "--name",
        name,
        "--label",
        f"{OWNER_LABEL}={_owner()}",
        "--label",
        f"{GROUP_LABEL}={os.getpgid(0)}",
        "--init",  # a PID 1 that reaps what student code leaves and passes signals on
        # Ctrl-C is the grader's to handle (it removes the container); the docker
        # client passing it on would end the grading inside with no result
        # where the grader itself ignores SIGINT (a background job).
        "--sig-proxy=false",
        "--network",
        "none",
        "--read-only",
        "--memory",
        settings.memory,
        "--memory-swap",
        settings.memory,
        "--pids-limit",
        str(settings.pids),
        "--cpus",
        str(settings.cpus),
        "--env",  # the kernel's torch threads match the CPUs it has, not the host's cores
        f"AUTOGRADER_THREADS={max(1, int(settings.cpus))}",
        "--cap-drop",
        "ALL",
        *(part for capability in _CAPABILITIES for part in ("--cap-add", capability)),
        "--security-opt",
        "no-new-privileges",
        "--tmpfs",
        f"/tmp:rw,nosuid,nodev,size={settings.scratch},mode=1777",
        "--tmpfs",
        f"{WORKDIR}:rw,nosuid,nodev,size={settings.scratch},mode=0700",
        "--tmpfs",
        "/run/grader:rw,nosuid,nodev,size=256m,mode=0700",  # the grader's own HOME and TMPDIR
        "--tmpfs",
        f"{KAGGLE}:rw,nosuid,nodev,size=64k,mode=0755",
        "--mount",
        _bind(submission.resolve(), inside),
    ]
    if settings.course is not None:
        command += ["--mount", _bind(settings.course.resolve(), MOUNTED_COURSE)]
    if settings.gpus:
        command += ["--gpus", settings.gpus]
    command.append(settings.image)
    if settings.course is not None:
        command += ["--course", MOUNTED_COURSE]
    command += ["grade", "--json", "-", inside]
    if assignment is not None:
        command += ["--assignment", assignment]
    if cell_timeout_s is not None:
        command += ["--cell-timeout", str(cell_timeout_s)]
    if notebook_timeout_s is not None:
        command += ["--notebook-timeout", str(notebook_timeout_s)]
    if public_only:  # a student's self-check: the public checks alone, in the container too
        command.append("--public-only")
    return command


def grade_in_container(
    path: Path,
    *,
    settings: ContainerSettings,
    assignment_name: str | None = None,
    cell_timeout_s: float | None = None,
    notebook_timeout_s: float | None = None,
    public_only: bool = False,
) -> SubmissionResult:
    """Grade one notebook in a container of its own. Never raises for a bad
    submission or a failed container: that becomes the result's reason.
    The container is removed however this ends (Ctrl-C and SIGTERM included)."""
    try:  # staging's rule: the container gets the grader's own copy, never a path the student chose
        data = read_regular(path)
    except NotANotebookError as error:
        return _failed(path, assignment_name, "rejected", error.reason)
    staging = Path(tempfile.mkdtemp(prefix="autograder-container-"))
    staged = staging / _safe_name(path.name)
    staged.write_bytes(data)
    name = f"autograder-{secrets.token_hex(6)}"
    command = docker_command(
        settings,
        staged,
        name=name,
        assignment=assignment_name,
        cell_timeout_s=cell_timeout_s,
        notebook_timeout_s=notebook_timeout_s,
        public_only=public_only,
    )
    try:
        try:
            run = subprocess.run(command, capture_output=True, timeout=settings.timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            reason = f"the grading container ran past {settings.timeout_s:g} s and was removed"
            return _failed(path, assignment_name, "error", reason)
        try:
            result = SubmissionResult.from_json(run.stdout.decode("utf-8", "replace"))
        except (ValueError, TypeError, KeyError):
            return _failed(path, assignment_name, "error", _why_no_result(name, run))
        return dataclasses.replace(result, submission=str(path))
    finally:
        _remove(name)
        shutil.rmtree(staging, ignore_errors=True)


def remove_orphans() -> list[str]:
    """Remove the containers that a grader on this machine started and did not
    live to remove (kill -9, a crash); containers of running graders stay."""
    listing = subprocess.run(
        ["docker", "ps", "--all", "--filter", f"label={OWNER_LABEL}", "--format", _ID_AND_OWNER],
        capture_output=True,
        text=True,
        check=False,
    )
    removed = []
    for line in listing.stdout.splitlines():
        container, _, owner = line.partition(" ")
        host, _, process = owner.partition("/")
        pid, _, started = process.partition("/")
        if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid), started):
            _remove(container)
            removed.append(container)
    return removed


@contextlib.contextmanager
def result_only_on_stdout() -> Iterator[Callable[[str], None]]:
    """While grading, anything written to stdout (a library, a check) goes to
    stderr instead, so that the one thing on stdout is the result given to
    the function this yields: how a container hands its result back."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with open(saved, "w", encoding="utf-8", closefd=False) as stdout:

            def send(text: str) -> None:
                stdout.write(text)
                stdout.flush()

            yield send
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def container_workspace(config: AssignmentConfig) -> Iterator[Workspace]:
    """Inside the image: the working folder on the container's tmpfs, and a
    kernel that runs as a fresh uid; everything of that uid is stopped and
    the folders emptied when the submission ends."""
    uid = fresh_uid()
    WORKDIR.mkdir(mode=0o700, exist_ok=True)
    _empty(WORKDIR)
    runtime = Path(tempfile.mkdtemp(prefix="autograder-runtime-", dir="/tmp"))
    try:
        for folder in (WORKDIR, runtime, runtime / "ipython", runtime / "matplotlib"):
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chown(folder, uid, uid)
            folder.chmod(0o700)
        spec = privilege_drop(config, uid=uid, workdir=WORKDIR, env=kernel_env(WORKDIR, runtime, tmp=Path("/tmp")))
        _link_kaggle(config)
        launch = KernelLaunch(entry_argv(spec), {}, sandbox=_describe(uid))
        yield Workspace(WORKDIR, runtime, launch, isolation="container")
    finally:
        kill_everything_of(uid)
        _empty(WORKDIR)
        if KAGGLE.is_dir():
            _empty(KAGGLE)
        shutil.rmtree(runtime, ignore_errors=True)


def _link_kaggle(config: AssignmentConfig) -> None:
    """/kaggle/input/PATH shows a public asset folder, /kaggle/working the working
    folder, as on Kaggle; the tmpfs is root's, so student code cannot change them."""
    if not config.kaggle_inputs:
        return
    public = default_store().public
    links = {f"input/{path.strip('/')}": public / folder for path, folder in config.kaggle_inputs.items()}
    for relative, target in {**links, "working": WORKDIR}.items():
        link = KAGGLE / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)


def _safe_name(name: str) -> str:
    """The file name inside the container: the same stem (assignments are
    recognised by it) with nothing a mount option or a shell could misread."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".-") or "submission.ipynb"


def _bind(source: Path, target: str) -> str:
    """A read-only `--mount` value; quoted as CSV, so commas in a path are safe."""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(["type=bind", f"source={source}", f"target={target}", "readonly"])
    return line.getvalue()


def _started(pid: int) -> str:
    """A process's start time (clock ticks since boot): with the pid, it names
    the process even after the pid is reused. Empty where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def _owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{_started(os.getpid())}"


def _alive(pid: int, started: str) -> bool:
    now = _started(pid)
    if now:
        return now == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started  # recorded with a start time, yet /proc no longer has it: gone


def _remove(container: str) -> None:
    subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)


def _why_no_result(name: str, run: subprocess.CompletedProcess[bytes]) -> str:
    state = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.OOMKilled}}", name], capture_output=True, text=True, check=False
    )
    memory = ", out of memory" if state.stdout.strip() == "true" else ""
    said = (run.stderr.decode("utf-8", "replace").strip().splitlines() or ["nothing on stderr"])[-1][:500]
    return f"the grading container gave no result (exit {run.returncode}{memory}): {said}"


def _failed(path: Path, assignment: str | None, status: Literal["rejected", "error"], reason: str) -> SubmissionResult:
    return ungraded_result(path, status=status, reason=reason, assignment=assignment)


def _describe(uid: int) -> str:
    """What bounds the kernel, read from the container itself."""
    memory = _first_line("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max")
    pids = _first_line("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max")
    mib = f"{int(memory) // 2**20} MiB" if memory.isdigit() and int(memory) < 2**50 else "no memory limit"
    network = "no network" if set(os.listdir("/sys/class/net")) <= {"lo"} else "network"
    return f"container, uid {uid}, {mib}, {pids or 'unlimited'} processes, {network}"


def _first_line(*paths: str) -> str:
    for path in paths:
        with contextlib.suppress(OSError):
            return Path(path).read_text().strip()
    return ""


def _empty(folder: Path) -> None:
    """Remove what is in the folder (never following a link), keeping the folder."""
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()
