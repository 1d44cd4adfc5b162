"""The plain starts, where the namespace sandbox cannot be built.

`unprivileged`, root without namespaces or cgroups (a cgroup-v2-only host,
Gradescope's runner): the kernel gets a fresh uid with no groups, rlimits,
no_new_privs and a clean environment, in 0700 folders of its own; everything
of that uid is killed when the submission ends (or, the grader killed first,
by the next grader). The grader's own material must be root's alone: the
caller (`open_workspace`) refuses otherwise.

`unisolated`, not root where no user namespace can be made (a student
self-checking on macOS, Windows, a restricted kernel): the kernel runs as
the user. It is the student's own code on the student's own machine.

Neither builds a view, so neither shows the notebook the course's Kaggle
paths; each workspace lists those this machine lacks (`Workspace.missing`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from autograder.config import AssignmentConfig
from autograder.isolation.processes import kill_everything_of, owned_temp_folder
from autograder.isolation.workspace import (
    KERNEL,
    KernelLaunch,
    Workspace,
    entry_argv,
    fresh_uid,
    kernel_env,
    privilege_drop,
)


@contextlib.contextmanager
def unisolated(config: AssignmentConfig, description: str) -> Iterator[Workspace]:
    with owned_temp_folder("") as root:  # no limits of its own: the student's machine
        (root / "work").mkdir()
        (root / "runtime" / "ipython").mkdir(parents=True)
        env = kernel_env(root / "work", root / "runtime", tmp=Path(tempfile.gettempdir()))
        launch = KernelLaunch((sys.executable, *KERNEL), env, sandbox=description)
        yield Workspace(root / "work", root / "runtime", launch, isolation=description, missing=_missing(config))


@contextlib.contextmanager
def unprivileged(config: AssignmentConfig, description: str) -> Iterator[Workspace]:
    uid = fresh_uid()
    with owned_temp_folder("user-", uid=uid) as scratch:
        workdir, runtime = scratch / "work", scratch / "runtime"
        for folder in (workdir, runtime, runtime / "ipython", runtime / "matplotlib"):
            folder.mkdir(mode=0o700)
            os.chown(folder, uid, uid)
        scratch.chmod(0o711)
        spec = privilege_drop(config, uid=uid, workdir=workdir, env=kernel_env(workdir, runtime, tmp=runtime))
        launch = KernelLaunch(entry_argv(spec), {}, sandbox=f"uid {uid}, {description}")
        try:
            yield Workspace(workdir, runtime, launch, isolation=description, missing=_missing(config))
        finally:
            kill_everything_of(uid)


def _missing(config: AssignmentConfig) -> tuple[str, ...]:
    """The Kaggle paths the course's notebooks use (`kaggle_inputs`, and
    /kaggle/working beside them) that this machine does not have."""
    if not config.kaggle_inputs:
        return ()
    paths = [f"/kaggle/input/{path.strip('/')}" for path in config.kaggle_inputs] + ["/kaggle/working"]
    return tuple(path for path in paths if not os.path.exists(path))
