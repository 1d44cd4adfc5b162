"""The grading view off root: a student's machine, where the kernel cannot be
another user but the operating system lets anyone make a user namespace.

The kernel starts through `unshare --user --map-root-user` (in a warm
start's worker, a fork of its server whose holder makes the same user
namespace: forkserver.py) and the same namespaces and entry module as the
sandbox (namespaces.py, entry.py): it sees
the same allow-list view (the system and the Python environment read-only,
the public assets at /assets, /kaggle/input in both layouts and
/kaggle/working, a read-only root, private temp folders), has no network
(a fresh network namespace with nothing up), is PID 1 of its own PID
namespace (everything it starts dies with it), keeps no capability, and has
the rlimits on CPU time, file size, open files and core dumps. What it cannot
have unprivileged: cgroups (no memory or process limit), a uid of its own.

It runs the student's own code as the student, on the student's machine:
it is there to give the notebook the paths grading gives it, not to protect
anything from its user, and claims no sandbox (SECURITY.md).

Whether it works here is found by trying it once per process (`why_not_here`):
user namespaces are off where `/proc/sys/user/max_user_namespaces` is 0,
restricted by AppArmor on recent Ubuntu, refused inside many containers, and
absent from macOS and Windows. `AUTOGRADER_NO_USER_NAMESPACE=1` forces the
plain start (plain.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autograder.config import AssignmentConfig
from autograder.course import Course
from autograder.isolation.namespaces import ASSETS_VIEW, UNSHARE, ForkServer, covered, kaggle_links, kernel_view
from autograder.isolation.processes import owned_temp_folder
from autograder.isolation.workspace import KERNEL, KernelLaunch, Workspace, entry_argv, kernel_env, privilege_drop

SWITCH = "AUTOGRADER_NO_USER_NAMESPACE"  # "1": never try, start the kernel the plain way
_LAUNCHER = (UNSHARE[0], "--user", "--map-root-user", *UNSHARE[1:])
_PROBE = "import os; print(os.getuid(), os.access('/', os.W_OK))"  # the user's own uid, a read-only root
_PROBE_TIMEOUT_S = 60


def why_not_here() -> str:
    """Why the grading view cannot be built here without privileges ("" where it can)."""
    if sys.platform != "linux":
        return f"no user namespaces on {sys.platform}"
    if os.environ.get(SWITCH) == "1":
        return f"{SWITCH}=1"
    if shutil.which(UNSHARE[0]) is None:
        return "no unshare(1) for a user namespace"
    return _probe()


@functools.lru_cache(maxsize=1)
def _probe() -> str:
    """Start a tiny program exactly as a kernel would start: in the view, in a
    user namespace, with the entry module's every step. Its failure, in the
    machine's own words, is the reason."""
    with owned_temp_folder("view-probe-") as folder:
        spec = _spec(AssignmentConfig(), *_folders(folder))
        argv = (*_LAUNCHER, *entry_argv(spec, (sys.executable, "-I", "-S", "-c", _PROBE)))
        try:
            finished = subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"user namespaces do not work here ({type(error).__name__}: {error})"
    if finished.returncode == 0 and finished.stdout.strip() == f"{os.getuid()} False":
        return ""
    said = finished.stderr.strip().splitlines() or [f"exit status {finished.returncode}: {finished.stdout.strip()}"]
    return f"user namespaces do not work here ({said[-1][:300]})"


@contextlib.contextmanager
def viewed(config: AssignmentConfig, description: str) -> Iterator[Workspace]:
    """A workspace whose kernel sees the grading view, as the user who runs the grader."""
    with owned_temp_folder("view-") as scratch:  # 0700, the user's; removed by the next grader if this one dies
        workdir, runtime, root = _folders(scratch)
        spec = _spec(config, workdir, runtime, root)
        server = ForkServer.adopted()
        if server is not None:  # a warm start's: the same namespaces and entry steps, in a fork with torch imported
            argv = (*server.launcher(spec), "--", sys.executable, *KERNEL)
        else:
            argv = (*_LAUNCHER, *entry_argv(spec))
        launch = KernelLaunch(argv, {}, sandbox="your own user, in user namespaces: the grading view, no network")
        yield Workspace(workdir, runtime, launch, assets=ASSETS_VIEW, isolation=description)


def _public_code(shown: list[str]) -> list[str]:
    """The grader's package and the course's public assignments where the view
    does not already show them (a checkout's editable install), so a notebook
    can `import autograder.selfcheck` in the view as it does in the student's
    own kernel. Both ship to every student; the solutions beside them stay out."""
    package = Path(__file__).resolve().parents[1]
    public = Course.default().root / "assignments"
    return [str(p) for p in (package, public) if p.is_dir() and not covered(str(p), shown)]


def _folders(scratch: Path) -> tuple[Path, Path, Path]:
    workdir, runtime, root = scratch / "work", scratch / "runtime", scratch / "root"
    for folder in (workdir, runtime, runtime / "ipython", runtime / "matplotlib", root):
        folder.mkdir(mode=0o700)
    return workdir, runtime, root


def _spec(config: AssignmentConfig, workdir: Path, runtime: Path, root: Path) -> dict[str, Any]:
    """What entry.py does in the user namespace: the sandbox's view and rlimits, as the same user."""
    uid = os.getuid()
    env = kernel_env(workdir, runtime, tmp=Path("/tmp"), assets=ASSETS_VIEW)
    view = kernel_view(uid=uid, workdir=workdir, runtime=runtime, root=root, kaggle=kaggle_links(config, workdir))
    view["read_only"] += _public_code(view["read_only"])
    spec: dict[str, Any] = {
        **privilege_drop(config, uid=uid, workdir=workdir, env=env),
        "gid": os.getgid(),
        "same_user": True,
        "view": {**view, "scratch_mb": config.scratch_mb},
        "die_with_parent": True,  # `unshare --kill-child`
    }
    del spec["processes"]  # RLIMIT_NPROC counts every process of the user's, their desktop's too
    return spec
