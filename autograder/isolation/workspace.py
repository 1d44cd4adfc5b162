"""What every runner hands the engine (a `Workspace` with its `KernelLaunch`),
and what every runner gives the kernel alike: a clean environment, a fresh
uid, its share of the cores, and the privilege drop `entry.py` carries out.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.assets import default_store
from autograder.config import AssignmentConfig
from autograder.errors import AutograderError
from autograder.isolation.processes import FIRST_UID

ENTRY = Path(__file__).with_name("entry.py")
KERNEL = ("-m", "ipykernel_launcher", "-f", "{connection_file}", "--HistoryManager.enabled=False")
_GPU_SETTINGS = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "LD_LIBRARY_PATH")


@dataclass(frozen=True)
class KernelLaunch:
    """How to start the kernel process: the command and its environment."""

    argv: tuple[str, ...]
    env: dict[str, str]
    sandbox: str = "none"


@dataclass(frozen=True)
class Workspace:
    """A submission's working folder, its kernel's runtime folder, and how to launch it."""

    workdir: Path
    runtime: Path
    launch: KernelLaunch
    assets: Path | None = None  # the public assets as the kernel sees them; None: at their host path
    isolation: str = ""  # which runner, and why nothing stronger: recorded in the result
    missing: tuple[str, ...] = ()  # paths grading shows the kernel that it cannot see here (/kaggle/input/...)


@dataclass(frozen=True)
class Isolation:
    """Which runner this machine gives a kernel, and why nothing stronger."""

    kind: str  # "namespaces" (the full sandbox), "container", "user" (a fresh uid only), "user-namespace", "none"
    reason: str = ""  # why not the full sandbox, in the machine's own terms


class IsolationRefusedError(AutograderError, PermissionError):
    """Hidden material would sit within reach of the student's code: refused
    unless the instructor waives isolation by name."""

    exit_code = 1


def fresh_uid() -> int:
    return FIRST_UID + secrets.randbelow(1_000_000_000)


def privilege_drop(config: AssignmentConfig, *, uid: int, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """The spec `entry.py` reads: the user to become, its folder, its limits and
    environment. A runner adds its own parts (cgroups, the view)."""
    return {
        "uid": uid,
        "workdir": str(workdir),
        "cpu_seconds": int(config.notebook_timeout_s * 2 + 120),
        "file_bytes": config.scratch_mb * 1024 * 1024,
        "processes": config.processes,
        "env": env,
    }


def entry_argv(spec: dict[str, Any], program: tuple[str, ...] = (sys.executable, *KERNEL)) -> tuple[str, ...]:
    """The kernel's command (or another `program`'s) through `entry.py`, which drops to the spec's user first."""
    return (sys.executable, "-I", str(ENTRY), json.dumps(spec), "--", *program)


def usable_cores() -> int:
    """The cores this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def kernel_threads() -> int:
    """How many threads one kernel's torch and BLAS may use: the grader's share of
    the cores ($AUTOGRADER_THREADS, set by a batch to cores / workers), else all of
    them. Without this, two kernels on two cores each start two busy threads and a
    heavy notebook runs three to four times slower than it does alone."""
    cores = usable_cores()
    try:
        return max(1, int(os.environ.get("AUTOGRADER_THREADS", cores)))
    except ValueError:
        return cores


def share_cores(workers: int) -> None:
    """Give this process (a batch worker) its share of the cores, for its kernels and its checks."""
    threads = max(1, usable_cores() // max(1, workers))
    os.environ["AUTOGRADER_THREADS"] = str(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for torch imported later in this process
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def clean_env(*, home: Path, tmp: Path) -> dict[str, str]:
    """What every process the grader starts for a kernel gets (the kernel, the
    fork server): nothing of the grader's own environment is passed on."""
    threads = str(kernel_threads())
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        # which GPUs the kernel may use, and where the driver's libraries are, as the grader has them
        **{name: os.environ[name] for name in _GPU_SETTINGS if name in os.environ},
    }


def kernel_env(workdir: Path, runtime: Path, *, tmp: Path, assets: Path | None = None) -> dict[str, str]:
    """A clean environment: nothing of the grader's own is passed on. `assets`:
    where the kernel sees the public assets (default: their host path)."""
    torch_home = default_store().torch_home if assets is None else assets / "torch"
    return {
        **clean_env(home=workdir, tmp=tmp),
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(runtime / "matplotlib"),
        "IPYTHONDIR": str(runtime / "ipython"),
        # torchvision finds weights in $TORCH_HOME/hub/checkpoints, read-only, no network
        "TORCH_HOME": str(torch_home),
    }
