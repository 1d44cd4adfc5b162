"""The sandbox: where and as whom a submission's kernel runs.

As root on Linux (a grading server, a container, CI) every submission gets:
its own user id; a size-capped tmpfs working folder owned by that user; a
memory and a pids cgroup of its own (limits per submission, not per user);
fresh mount, network, IPC and PID namespaces; a read-only root file system
with hidden material covered and private, capped /tmp and /dev/shm; CPU-time,
file-size and process rlimits. Everything in its cgroups is killed when the
submission ends. See SECURITY.md for the threat model.

Not root (a student self-checking on a laptop), the kernel runs as the user,
unsandboxed: it is the student's own code on the student's own machine.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from autograder.assets import default_store
from autograder.config import AssignmentConfig

_ENTRY = Path(__file__).with_name("sandbox_entry.py")
_FORKSERVER = Path(__file__).with_name("forkserver.py")
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_CONTROLLERS = ("memory", "pids")
_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
_ALWAYS_HIDDEN = ("/root", "/home", "/var/lib/autograder")
_NAMESPACES = ("unshare", "--mount", "--net", "--ipc", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc")
_LIVE: dict[int, Callable[[], None]] = {}  # uid -> the tear-down of a sandbox open in this process
_GPU_SETTINGS = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "LD_LIBRARY_PATH")
_KERNEL = ("-m", "ipykernel_launcher", "-f", "{connection_file}", "--HistoryManager.enabled=False")


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


def sandbox_available() -> bool:
    """True where the full sandbox can be built: root on Linux with cgroup v1 memory and pids."""
    return (
        sys.platform == "linux"
        and os.geteuid() == 0
        and shutil.which("unshare") is not None
        and all((_CGROUP_ROOT / c).is_dir() for c in _CONTROLLERS)
        and os.environ.get("AUTOGRADER_NO_SANDBOX") != "1"
    )


@contextlib.contextmanager
def open_workspace(config: AssignmentConfig, *, hide: Iterable[Path] = ()) -> Iterator[Workspace]:
    """A fresh workspace for one submission, sandboxed where possible; removed on exit."""
    from autograder.container import container_workspace, in_container  # container.py imports this module

    if in_container():  # inside the grading image, where the container is the sandbox
        with container_workspace(config, kernel_env=_kernel_env, kernel=_KERNEL) as workspace:
            yield workspace
        return
    if sandbox_available():
        with _sandboxed(config, hide) as workspace:
            yield workspace
    else:
        with tempfile.TemporaryDirectory(prefix="autograder-") as scratch:
            root = Path(scratch)
            (root / "work").mkdir()
            (root / "runtime" / "ipython").mkdir(parents=True)
            env = _kernel_env(root / "work", root / "runtime", tmp=Path(tempfile.gettempdir()))
            yield Workspace(root / "work", root / "runtime", KernelLaunch((sys.executable, *_KERNEL), env))


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


def _clean_env(*, home: Path, tmp: Path) -> dict[str, str]:
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


def _kernel_env(workdir: Path, runtime: Path, *, tmp: Path) -> dict[str, str]:
    """A clean environment: nothing of the grader's own is passed on."""
    return {
        **_clean_env(home=workdir, tmp=tmp),
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(runtime / "matplotlib"),
        "IPYTHONDIR": str(runtime / "ipython"),
        # torchvision finds weights in $TORCH_HOME/hub/checkpoints, read-only, no network
        "TORCH_HOME": str(default_store().torch_home),
    }


@contextlib.contextmanager
def _sandboxed(config: AssignmentConfig, hide: Iterable[Path]) -> Iterator[Workspace]:
    uid = 200_000 + secrets.randbelow(1_000_000_000)
    base = Path(os.environ.get("AUTOGRADER_SANDBOX_DIR", "/var/lib/autograder/sandboxes"))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o711)
    home = base / f"s{uid}"
    workdir, runtime = home / "work", home / "runtime"
    cgroups = [_CGROUP_ROOT / c / "autograder" / f"s{uid}" for c in _CONTROLLERS]
    _LIVE[uid] = functools.partial(_tear_down, uid, cgroups, workdir, home)
    try:
        home.mkdir(mode=0o711)
        workdir.mkdir(mode=0o700)
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={config.scratch_mb}m,mode=0700,uid={uid},gid={uid},nosuid,nodev",
                "tmpfs",
                str(workdir),
            ],
            check=True,
        )
        for folder in (runtime, runtime / "ipython", runtime / "matplotlib"):
            folder.mkdir(mode=0o700)
            os.chown(folder, uid, uid)
        _make_cgroups(cgroups, config)
        hidden = _hideable(hide, keep=[Path(sys.prefix), Path(sys.executable).resolve(), home, _ENTRY])
        spec = {
            "uid": uid,
            "workdir": str(workdir),
            "writable": [str(runtime)],
            "cgroups": [str(c / "cgroup.procs") for c in cgroups],
            "hide": hidden,
            "scratch": [p for p in _SCRATCH if Path(p).is_dir()],
            "needed": [str(Path(sys.prefix).resolve())],
            "kaggle": _kaggle_links(config, workdir),
            "scratch_mb": config.scratch_mb,
            "file_bytes": config.scratch_mb * 1024 * 1024,
            "cpu_seconds": int(config.notebook_timeout_s * 2 + 120),
            "processes": config.processes,
            "env": _kernel_env(workdir, runtime, tmp=Path("/tmp")),
        }
        kernel = [sys.executable, *_KERNEL]
        server = _ForkServer.get()
        argv: list[str]
        if server is not None:  # the same sandbox, entered by a fork of a process with torch imported
            spec["hide"] = [*hidden, str(server.folder)]
            argv = [sys.executable, "-I", "-S", str(_FORKSERVER), "launch", str(server.socket), json.dumps(spec)]
        else:
            argv = [*_NAMESPACES, sys.executable, str(_ENTRY), json.dumps(spec)]
        argv += ["--", *kernel]
        description = f"uid {uid}, {config.memory_mb} MiB, {config.processes} processes, no network"
        yield Workspace(workdir, runtime, KernelLaunch(tuple(argv), {}, sandbox=description))
    finally:
        _tear_down(uid, cgroups, workdir, home)
        _LIVE.pop(uid, None)


def _tear_down(uid: int, cgroups: list[Path], workdir: Path, home: Path) -> None:
    """Stop everything of the sandbox's user and remove what the sandbox made
    (done again, it finds nothing left to do)."""
    _kill_all(cgroups, uid)
    subprocess.run(["umount", "-l", str(workdir)], check=False, capture_output=True)
    for cgroup in cgroups:
        with contextlib.suppress(OSError):
            cgroup.rmdir()
    shutil.rmtree(home, ignore_errors=True)


class _ForkServer:
    """This process's fork server (forkserver.py), started on first use and
    stopped when the process exits. Off with AUTOGRADER_FORKSERVER=0; where it
    cannot start, kernels start the plain way (and the reason is kept)."""

    _current: _ForkServer | None = None
    _failed: str | None = None

    def __init__(self) -> None:
        base = Path(os.environ.get("AUTOGRADER_SANDBOX_DIR", "/var/lib/autograder/sandboxes")).parent
        base.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="forkserver-", dir=base))  # 0700, root's
        self.socket = self.folder / "socket"
        env = _clean_env(home=self.folder, tmp=Path("/tmp"))
        self.process = subprocess.Popen(
            [sys.executable, str(_FORKSERVER), "serve", str(self.socket)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.folder,
        )
        self._ready = False

    @classmethod
    def start(cls) -> None:
        """Start it now (a batch worker does, so that it warms up while work arrives)."""
        if cls._current is None and cls._failed is None and _forkserver_wanted():
            cls._current = cls()
            atexit.register(cls._current.stop)

    @classmethod
    def get(cls) -> _ForkServer | None:
        if not _forkserver_wanted():
            return None
        cls.start()
        server = cls._current
        if server is None or server._ready:
            return server
        assert server.process.stdout is not None
        ready, _, _ = select.select([server.process.stdout], [], [], 180)
        line = server.process.stdout.readline() if ready else b""
        if line.strip() == b"ready" and server.process.poll() is None:
            server._ready = True
            return server
        server.stop()
        cls._current = None
        cls._failed = "the fork server did not start: " + _tail(server.process.stderr)
        return None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()  # the server's signal to finish
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _forkserver_wanted() -> bool:
    return os.environ.get("AUTOGRADER_FORKSERVER", "1") != "0"


def start_forkserver() -> None:
    """Where kernels are sandboxed, start this process's fork server now."""
    if sandbox_available() and not _in_container():
        _ForkServer.start()


def _in_container() -> bool:
    from autograder.container import in_container

    return in_container()


def _tail(stream: IO[bytes] | None) -> str:
    if stream is None:
        return "(no output)"
    with contextlib.suppress(OSError):
        return stream.read(4000).decode(errors="replace").strip()[-1000:] or "(no output)"
    return "(no output)"


def _kaggle_links(config: AssignmentConfig, workdir: Path) -> dict[str, str]:
    """/kaggle/... path (relative) -> what it shows: the Kaggle dataset paths a
    notebook uses resolve to the public assets, /kaggle/working to its folder."""
    if not config.kaggle_inputs:
        return {}
    public = default_store().public
    links = {f"input/{path.strip('/')}": str(public / folder) for path, folder in config.kaggle_inputs.items()}
    return {**links, "working": str(workdir)}


def _make_cgroups(cgroups: list[Path], config: AssignmentConfig) -> None:
    memory, pids = cgroups
    limit = str(config.memory_mb * 1024 * 1024)
    for cgroup in cgroups:
        cgroup.mkdir(parents=True)
    (memory / "memory.limit_in_bytes").write_text(limit)
    swap = memory / "memory.memsw.limit_in_bytes"
    if swap.exists():  # no swapping past the limit either
        swap.write_text(limit)
    (pids / "pids.max").write_text(str(config.processes))


def _hideable(paths: Iterable[Path], *, keep: list[Path]) -> list[str]:
    """Folders to cover, minus any that would also hide what the kernel needs."""
    hidden = []
    for path in [*map(Path, _ALWAYS_HIDDEN), *paths]:
        path = path.resolve()
        if not path.is_dir() or path == Path("/"):
            continue
        if any(needed == path or path in needed.parents for needed in (k.resolve() for k in keep)):
            continue
        hidden.append(str(path))
    return sorted(set(hidden))


def _members(cgroup: Path) -> list[str]:
    try:
        return (cgroup / "cgroup.procs").read_text().split()
    except OSError:
        return []


def tear_down_live_sandboxes() -> None:
    """Stop the student code of this process's open sandboxes and remove the
    sandboxes, from any thread: a batch worker whose grader died does this
    before it exits, whatever its main thread was doing."""
    for uid, tear_down in list(_LIVE.items()):
        tear_down()
        _LIVE.pop(uid, None)


def _kill_all(cgroups: list[Path], uid: int, timeout_s: float = 10.0) -> None:
    """SIGKILL every process left in the submission's cgroups, then wait until no
    process of its user exists at all (zombies included) before returning."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = {int(pid) for cgroup in cgroups for pid in _members(cgroup)} | _processes_of(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _processes_of(uid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        found.add(int(status.parent.name))
                    break
    return found
