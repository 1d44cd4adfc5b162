"""A user other than root to run the grader as (CI runs as root): a uid of no
account, through setpriv, or this process's own user where it is not root.
Where that user cannot run the checkout, the fixtures skip and say why.
Test modules import the fixtures they use (`student`, `user_namespaces`)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class OtherUser:
    """Who runs the grader here: not root, with a folder of its own."""

    uid: int
    gid: int
    home: Path
    prefix: tuple[str, ...]  # what starts a command as that user

    def run(self, *argv: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        variables = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(self.home),
            "USER": "student",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            **{name: os.environ[name] for name in ("AUTOGRADER_ASSETS",) if name in os.environ},
            **env,
        }
        command = [*self.prefix, "env", "-i", *(f"{k}={v}" for k, v in variables.items()), *argv]
        return subprocess.run(command, cwd=self.home, capture_output=True, text=True, timeout=timeout, check=False)

    def python(self, code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-c", code, *args, **env)

    def give(self, path: Path) -> Path:
        """A copy of `path` in the user's folder, the user's own."""
        copy = self.home / path.name
        shutil.copyfile(path, copy)
        os.chown(copy, self.uid, self.gid)
        return copy


def _free_uid() -> int:
    """A uid no account has and no process runs as (below the sandbox's 200000 and up)."""
    running = set()
    for process in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            running.add(process.stat().st_uid)
    for uid in range(61_000, 62_000):
        with contextlib.suppress(KeyError):
            pwd.getpwuid(uid)
            continue
        if uid not in running:
            return uid
    pytest.skip("no free uid between 61000 and 62000 for the student")


@pytest.fixture(scope="module")
def student() -> Iterator[OtherUser]:
    """The student: this user where the tests are not root, else a uid of no account."""
    home = Path(tempfile.mkdtemp(prefix="autograder-student-"))
    try:
        if os.geteuid() != 0:
            user = OtherUser(os.getuid(), os.getgid(), home, ())
        else:
            if shutil.which("setpriv") is None:
                pytest.skip("no setpriv(1) to start the grader as a user other than root")
            uid = _free_uid()
            os.chown(home, uid, uid)
            user = OtherUser(uid, uid, home, ("setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"))
        home.chmod(0o755)
        tried = user.python("import autograder.grading")
        if tried.returncode != 0:
            pytest.skip(f"uid {user.uid} cannot run this checkout (it and its .venv must be readable by others)")
        yield user
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def user_namespaces(student: OtherUser) -> None:
    """Skip where the machine itself refuses the student a user namespace (util-linux's
    own unshare, not the grader's probe: the grader's failing where that works is a bug)."""
    tried = student.run("unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "true")
    if tried.returncode != 0:
        pytest.skip(f"this machine gives uid {student.uid} no user namespace: {tried.stderr.strip()[-300:]}")
