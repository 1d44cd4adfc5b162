"""Isolation: where and as whom a submission's kernel runs, behind one interface.

`open_workspace` gives one submission a `Workspace` (its folders and how to
launch its kernel) from the strongest runner this machine has
(`isolation_here`), recorded in the result:

- "namespaces" (namespaces.py): root on Linux with cgroup v1; a fresh uid,
  cgroups, fresh namespaces, the allow-list view; kernels forked from a fork
  server (forkserver.py) with torch imported, or started through `unshare`;
- "container" (container.py): inside the grading image, the container is the
  outer boundary and the kernel a fresh uid; the host side that starts one
  container per submission (`grade_in_container`) lives there too;
- "user" (plain.py): root without the sandbox (a cgroup-v2-only host,
  Gradescope's runner): a fresh uid with limits, the grader's material
  root-only, else refused;
- "user-namespace" (user_namespace.py): not root on Linux where user
  namespaces work (a student self-checking): the kernel, as the user, gets
  the sandbox's view (/kaggle/input, /assets, no network, a read-only root)
  through the same entry module, with rlimits but no cgroups; it protects
  nothing from the user, so hidden material is refused unless waived;
- "none" (plain.py): not root where no user namespace can be made (macOS,
  Windows, restricted kernels, AUTOGRADER_NO_USER_NAMESPACE=1); the kernel
  runs as the user and sees the machine as it is, and the workspace lists the
  course's paths it lacks (`Workspace.missing`), so that checks needing them
  are the machine's fault (`environment`), not the student's.

Every runner starts its kernel through the one entry module (entry.py, the
privilege drop), stops it with the one killer (`kill_everything_of`), and
claims its folders, so that what a killed grader left is removed by the next
(processes.py). See SECURITY.md.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from autograder.config import AssignmentConfig
from autograder.isolation import namespaces, plain, user_namespace
from autograder.isolation.container import container_workspace, in_container
from autograder.isolation.namespaces import ASSETS_VIEW, ForkServer, tear_down_live_sandboxes
from autograder.isolation.processes import kill_everything_of, remove_dead_temp_folders
from autograder.isolation.workspace import (
    Isolation,
    IsolationRefusedError,
    KernelLaunch,
    Workspace,
    kernel_threads,
    share_cores,
    usable_cores,
)

__all__ = [
    "ASSETS_VIEW",
    "Isolation",
    "IsolationRefusedError",
    "KernelLaunch",
    "Workspace",
    "isolation_here",
    "kernel_threads",
    "kill_everything_of",
    "open_workspace",
    "sandbox_available",
    "share_cores",
    "start_forkserver",
    "tear_down_live_sandboxes",
    "usable_cores",
]


def isolation_here() -> Isolation:
    """The strongest isolation this machine can build, with the real reason for anything less."""
    if in_container():
        return Isolation("container")
    missing = namespaces.missing_for_the_sandbox()
    if not missing:
        return Isolation("namespaces")
    root = sys.platform == "linux" and os.geteuid() == 0
    if root and os.environ.get("AUTOGRADER_NO_SANDBOX") != "1":
        return Isolation("user", "; ".join(missing))
    if not root and sys.platform == "linux":
        why_not = user_namespace.why_not_here()
        if not why_not:
            return Isolation("user-namespace", "; ".join(missing))
        missing.append(why_not)
    return Isolation("none", "; ".join(missing))


def sandbox_available() -> bool:
    """True where the full sandbox can be built: root on Linux with cgroup v1 memory and pids."""
    return isolation_here().kind == "namespaces"


@contextlib.contextmanager
def open_workspace(
    config: AssignmentConfig, *, hidden_material: Sequence[Path] = (), waiver: str = ""
) -> Iterator[Workspace]:
    """A fresh workspace for one submission, isolated as strongly as this machine
    allows; removed on exit. `hidden_material` (solutions, hidden assets) must be
    out of the kernel's reach: where the isolation cannot promise that, this
    refuses unless `waiver` names who waived it."""
    isolation = isolation_here()
    if isolation.kind == "container":
        with container_workspace(config) as workspace:
            yield workspace
        return
    if isolation.kind == "namespaces":
        with namespaces.sandboxed(config) as workspace:
            yield workspace
        return
    unguarded = isolation.kind in ("none", "user-namespace")  # the student's code runs as the grader's user
    exposed = [str(p) for p in hidden_material if unguarded or _reachable_by_others(p)]
    if exposed and not waiver:
        raise IsolationRefusedError(_refusal(isolation, exposed))
    remove_dead_temp_folders()
    noted = f"; waived: {waiver}" if exposed else ""
    runners = {"user": plain.unprivileged, "user-namespace": user_namespace.viewed}
    runner = runners.get(isolation.kind, plain.unisolated)
    with runner(config, f"{isolation.kind} ({isolation.reason}{noted})") as workspace:
        yield workspace


def start_forkserver() -> None:
    """Where kernels are sandboxed, start this process's fork server now."""
    if isolation_here().kind == "namespaces":
        ForkServer.start()


def _refusal(isolation: Isolation, exposed: list[str]) -> str:
    if isolation.kind == "user":
        return (
            f"the sandbox cannot be built here ({isolation.reason}) and the kernel would run as another user "
            f"who can read {', '.join(exposed)}: make that root's alone (chmod -R go-rwx), "
            "or waive isolation with --waive-isolation"
        )
    return (
        f"hidden checks would run beside the student's unsandboxed code ({isolation.reason}), which can read "
        f"{', '.join(exposed)}: grade as root on Linux or in the image (--docker), or waive isolation with "
        "--waive-isolation"
    )


def _reachable_by_others(path: Path) -> bool:
    """Whether a user with no rights of its own could list or read `path`."""
    path = path.resolve()
    if not path.exists():
        return False
    for folder in [*reversed(path.parents), path][:-1]:
        if not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)
