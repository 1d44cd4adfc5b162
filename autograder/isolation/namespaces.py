"""The namespace sandbox: the full isolation, as root on Linux with cgroup v1.

Every submission gets its own user id; a size-capped tmpfs working folder
owned by that user; a memory, a pids and (where the host has one) a cpu
cgroup of its own (limits per submission, not per user); fresh mount,
network, IPC, UTS and PID namespaces; a file system built from a written
allow-list (`kernel_view`, SECURITY.md "The kernel's view"); CPU-time,
file-size and process rlimits. Kernels come from a fork server (torch
imported once) or, where it cannot start, through `unshare` and entry.py.
Everything in its cgroups is killed when the submission ends, and what a
killed grader left is removed by the next (`remove_leftovers_of_dead_graders`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import glob
import json
import os
import select
import shutil
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from autograder.assets import default_store
from autograder.config import AssignmentConfig
from autograder.isolation.processes import (
    BEING_MADE_S,
    TEMP_PREFIX,
    cgroup_members,
    claim,
    kill_everything_of,
    owned_by_the_living,
    remove_dead_temp_folders,
)
from autograder.isolation.workspace import (
    KERNEL,
    KernelLaunch,
    Workspace,
    clean_env,
    entry_argv,
    fresh_uid,
    kernel_env,
    privilege_drop,
)

_FORKSERVER = Path(__file__).with_name("forkserver.py")
_CGROUP_ROOT = Path(os.environ.get("AUTOGRADER_CGROUP_ROOT", "/sys/fs/cgroup"))  # elsewhere: a host without v1
_CONTROLLERS = ("memory", "pids")  # required
_CPU = "cpu"  # where the host has it: each submission's share of the cores (cpu.shares), not the processes' count
_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# The kernel's file system is built from these lists alone (SECURITY.md, "The
# kernel's view"): nothing of the host that they do not name is there.
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FROM_HOST = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "mime.types")
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_GPU_DEVICES = ("/dev/nvidia*", "/dev/nvidia-caps")
ASSETS_VIEW = Path("/assets")  # where the public assets appear to a sandboxed kernel, whatever their host path
# fresh namespaces for the kernel, PID 1 of its own (the user-namespace runner adds --user)
UNSHARE = ("unshare", "--mount", "--net", "--ipc", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc")
_LIVE: dict[int, Callable[[], None]] = {}  # uid -> the tear-down of a sandbox open in this process


def missing_for_the_sandbox() -> list[str]:
    """Why the sandbox cannot be built here, in the machine's own terms (none: it can)."""
    return [
        why
        for failed, why in (
            (sys.platform != "linux", f"not Linux ({sys.platform})"),
            (os.geteuid() != 0, "not root"),
            (shutil.which("unshare") is None, "no unshare(1)"),
            (
                not all((_CGROUP_ROOT / c).is_dir() for c in _CONTROLLERS),
                f"no cgroup v1 memory and pids controllers under {_CGROUP_ROOT}",
            ),
            (not _has_filter_library(), "no libseccomp.so.2 for the kernel's system-call filter (Debian: libseccomp2)"),
            (os.environ.get("AUTOGRADER_NO_SANDBOX") == "1", "AUTOGRADER_NO_SANDBOX=1"),
        )
        if failed
    ]


def _has_filter_library() -> bool:
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return False
    return True


@contextlib.contextmanager
def sandboxed(config: AssignmentConfig) -> Iterator[Workspace]:
    """A submission's sandbox, torn down on exit (and by the next grader where this one is killed)."""
    uid = fresh_uid()
    base = _sandbox_base()
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o711)
    remove_leftovers_of_dead_graders()
    home = base / f"s{uid}"
    workdir, runtime, root = home / "work", home / "runtime", home / "root"
    controllers = [*_CONTROLLERS, *([_CPU] if (_CGROUP_ROOT / _CPU / "cpu.shares").exists() else [])]
    cgroups = [_CGROUP_ROOT / c / "autograder" / f"s{uid}" for c in controllers]
    _LIVE[uid] = functools.partial(_tear_down, uid, cgroups, home)
    try:
        home.mkdir(mode=0o711)
        claim(home)  # before anything else is made: a sandbox with no live owner is a leftover
        for folder, size in ((workdir, config.scratch_mb), (runtime, 64)):  # capped: nothing lands on the host's disk
            folder.mkdir(mode=0o700)
            _mount_tmpfs(folder, f"size={size}m,mode=0700,uid={uid},gid={uid}")
        root.mkdir(mode=0o700)
        for folder in (runtime / "ipython", runtime / "matplotlib"):
            folder.mkdir(mode=0o700)
            os.chown(folder, uid, uid)
        _make_cgroups(cgroups, config)
        env = kernel_env(workdir, runtime, tmp=Path("/tmp"), assets=ASSETS_VIEW)
        view = kernel_view(uid=uid, workdir=workdir, runtime=runtime, root=root, kaggle=kaggle_links(config, workdir))
        spec = {
            **privilege_drop(config, uid=uid, workdir=workdir, env=env),
            "cgroups": [str(c / "cgroup.procs") for c in cgroups],
            "view": {**view, "scratch_mb": config.scratch_mb},
            "die_with_parent": True,  # `unshare --kill-child`, the fork server's holder
        }
        server = ForkServer.get()
        argv: tuple[str, ...]
        if server is not None:  # the same sandbox, entered by a fork of a process with torch imported
            argv = (*server.launcher(spec), "--", sys.executable, *KERNEL)
        else:
            argv = (*UNSHARE, *entry_argv(spec))
        description = f"uid {uid}, {config.memory_mb} MiB, {config.processes} processes, no network"
        launch = KernelLaunch(argv, {}, sandbox=description)
        yield Workspace(workdir, runtime, launch, assets=ASSETS_VIEW, isolation="namespaces")
    finally:
        _tear_down(uid, cgroups, home)
        _LIVE.pop(uid, None)


def kernel_view(*, uid: int, workdir: Path, runtime: Path, root: Path, kaggle: dict[str, str]) -> dict[str, Any]:
    """The sandboxed kernel's whole file system, as lists `entry.py` mounts
    and nothing else: the system folders and the Python environment read-only,
    a generated /etc, a minimal /dev (with the GPU's nodes where there is one),
    the public assets at /assets, the working and runtime folders, private temp
    folders. No course, no checkout, no class folder, no results."""
    symlinks, read_only = {}, []
    for path in _SYSTEM:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            symlinks[path] = os.readlink(path)
        elif os.path.isdir(path):
            read_only.append(path)
    read_only += [f"/etc/{name}" for name in _ETC_FROM_HOST if os.path.exists(f"/etc/{name}")]
    read_only += _python_folders(read_only)
    devices = [path for path in _DEVICES if os.path.exists(path)]
    if os.path.exists("/dev/nvidiactl"):  # the GPU's nodes, and the driver's libraries where they are kept apart
        devices += sorted({path for pattern in _GPU_DEVICES for path in glob.glob(pattern)})
        libraries = os.environ.get("LD_LIBRARY_PATH", "").split(":")
        read_only += [p for p in libraries if os.path.isabs(p) and os.path.isdir(p) and not covered(p, read_only)]
    public = default_store().public
    return {
        "root": str(root),
        "read_only": read_only,
        "symlinks": symlinks,
        "etc": _generated_etc(uid, workdir),
        "devices": devices,
        "assets": str(public) if public.is_dir() else "",
        "writable": [str(workdir), str(runtime)],
        "scratch": list(_SCRATCH),
        "kaggle": kaggle,
    }


def _python_folders(already: list[str]) -> list[str]:
    """The interpreter, its standard library and site-packages: the environment's
    own folders, never a source folder an editable install points at."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *site.getsitepackages()}
    folders: list[str] = []
    for folder in sorted(os.path.realpath(c) for c in candidates):
        if os.path.isdir(folder) and not covered(folder, [*already, *folders]):
            folders.append(folder)
    return folders


def covered(path: str, folders: Iterable[str]) -> bool:
    return any(path == folder or path.startswith(folder.rstrip("/") + "/") for folder in folders)


def _generated_etc(uid: int, workdir: Path) -> dict[str, str]:
    """What Python and the libraries read from /etc, and nothing of the host's."""
    return {
        "passwd": f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nstudent:x:{uid}:{uid}:student:{workdir}:/bin/sh\n",
        "group": f"root:x:0:\nstudent:x:{uid}:\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
        "hostname": "sandbox\n",
    }


def _mount_tmpfs(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"{options},nosuid,nodev", "tmpfs", str(folder)], check=True)


def _sandbox_base() -> Path:
    return Path(os.environ.get("AUTOGRADER_SANDBOX_DIR", "/var/lib/autograder/sandboxes"))


def remove_leftovers_of_dead_graders() -> None:
    """What graders killed outright (SIGKILL, the OOM killer) left behind:
    their sandboxes' processes, mounts, cgroups and folders, their fork servers'
    and temporary folders. A live grader's, a concurrent one's included, are never touched."""
    base = _sandbox_base()
    controllers = [*_CONTROLLERS, _CPU]
    for home in base.glob("s[0-9]*"):
        if home.name[1:].isdigit() and not owned_by_the_living(home):
            cgroups = [_CGROUP_ROOT / c / "autograder" / home.name for c in controllers]
            _tear_down(int(home.name[1:]), [c for c in cgroups if c.is_dir()], home)
    for controller in controllers:  # a cgroup outlives its folder when its grader died tearing down
        for cgroup in (_CGROUP_ROOT / controller / "autograder").glob("s[0-9]*"):
            # empty and old only: a grader with another AUTOGRADER_SANDBOX_DIR keeps its folders elsewhere
            if not (base / cgroup.name).exists() and not cgroup_members(cgroup) and _older_than(cgroup, BEING_MADE_S):
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
    for folder in base.parent.glob("forkserver-*"):
        if not owned_by_the_living(folder):
            shutil.rmtree(folder, ignore_errors=True)
    remove_dead_temp_folders()


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def _tear_down(uid: int, cgroups: list[Path], home: Path) -> None:
    """Stop everything of the sandbox's user and remove what the sandbox made
    (done again, it finds nothing left to do)."""
    kill_everything_of(uid, cgroups)
    for folder in (home / "work", home / "runtime"):
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)
    for cgroup in cgroups:
        with contextlib.suppress(OSError):
            cgroup.rmdir()
    shutil.rmtree(home, ignore_errors=True)


class ForkServer:
    """This process's fork server (forkserver.py), started on first use and
    stopped when the process exits. Off with AUTOGRADER_FORKSERVER=0; where it
    cannot start, kernels start the plain way (and the reason is kept).

    A warm start's worker (warm.py) `adopt`s the server it was forked from."""

    _current: ForkServer | None = None
    _failed: str | None = None
    process: subprocess.Popen[bytes] | None
    folder: Path | None

    def __init__(self, *, own_session: bool = False, preload: tuple[str, ...] = ("torchvision",)) -> None:
        """`own_session`: a warm start's server, which forks the grader's worker too."""
        if os.geteuid() == 0:
            base, prefix = _sandbox_base().parent, "forkserver-"
            base.mkdir(parents=True, exist_ok=True)
            remove_leftovers_of_dead_graders()
        else:  # a student's warm start (its kernels in user namespaces): a temp folder of the user's
            base, prefix = Path(tempfile.gettempdir()), f"{TEMP_PREFIX}forkserver-"
            remove_dead_temp_folders()
        self.folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))  # 0700, its user's
        claim(self.folder)
        self.socket = self.folder / "socket"
        env = clean_env(home=self.folder, tmp=Path("/tmp"))
        self.process = subprocess.Popen(
            [sys.executable, str(_FORKSERVER), "serve", str(self.socket), *(["--workers"] * own_session), *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=self.folder,
            # a warm start's (warm.py): it forks the grader too, and a terminal's
            # Ctrl-C reaches the launcher alone, which passes it on
            start_new_session=own_session,
        )
        self._ready = False

    @classmethod
    def adopt(cls, socket: str) -> None:
        """Use the server listening at `socket` (the one this worker was forked
        from) for this process's kernels; its launcher stops it."""
        server = cls.__new__(cls)
        server.folder, server.socket, server.process, server._ready = None, Path(socket), None, True
        cls._current = server

    @classmethod
    def adopted(cls) -> ForkServer | None:
        """The server a warm start's worker was forked from, if this process is one."""
        server = cls._current
        return server if server is not None and server.process is None else None

    def launcher(self, spec: dict[str, Any]) -> tuple[str, ...]:
        """What jupyter_client starts as the kernel: the launcher that asks this server for one."""
        return (sys.executable, "-I", "-S", str(_FORKSERVER), "launch", str(self.socket), json.dumps(spec))

    def ready(self, timeout_s: float = 180) -> bool:
        """Wait until the server has imported what it shares; False if it failed (then stopped)."""
        if self._ready:
            return True
        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        line = self.process.stdout.readline() if ready else b""
        self._ready = line.strip() == b"ready" and self.process.poll() is None
        if not self._ready:
            self.stop()
        return self._ready

    def failure(self) -> str:
        return "the fork server did not start: " + _tail(self.process.stderr if self.process else None)

    @classmethod
    def start(cls) -> None:
        """Start it now (a batch worker does, so that it warms up while work arrives)."""
        if cls._current is None and cls._failed is None and _forkserver_wanted():
            cls._current = cls()
            atexit.register(cls._current.stop)

    @classmethod
    def get(cls) -> ForkServer | None:
        if not _forkserver_wanted():
            return None
        cls.start()
        server = cls._current
        if server is None or server.ready():
            return server
        cls._current = None
        cls._failed = server.failure()
        return None

    def stop(self) -> None:
        if self.process is None or self.folder is None:  # adopted: its launcher stops it
            return
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


def _tail(stream: IO[bytes] | None) -> str:
    if stream is None:
        return "(no output)"
    with contextlib.suppress(OSError):
        return stream.read(4000).decode(errors="replace").strip()[-1000:] or "(no output)"
    return "(no output)"


def kaggle_links(config: AssignmentConfig, workdir: Path) -> dict[str, str]:
    """/kaggle/... path (relative) -> what it shows: the Kaggle dataset paths a
    notebook uses resolve to the public assets at /assets, /kaggle/working to its folder."""
    if not config.kaggle_inputs:
        return {}
    links = {f"input/{path.strip('/')}": str(ASSETS_VIEW / folder) for path, folder in config.kaggle_inputs.items()}
    return {**links, "working": str(workdir)}


def _make_cgroups(cgroups: list[Path], config: AssignmentConfig) -> None:
    """Limits per submission: memory (and swap), processes, and where there is a
    cpu controller an equal share of the cores, so 150 spinning processes in
    one sandbox weigh as much as one honest kernel in another."""
    memory, pids, *cpu = cgroups
    limit = str(config.memory_mb * 1024 * 1024)
    for cgroup in cgroups:
        cgroup.mkdir(parents=True)
    for group in cpu:
        (group / "cpu.shares").write_text("1024")
    (memory / "memory.limit_in_bytes").write_text(limit)
    swap = memory / "memory.memsw.limit_in_bytes"
    if swap.exists():  # no swapping past the limit either
        swap.write_text(limit)
    (pids / "pids.max").write_text(str(config.processes))


def tear_down_live_sandboxes() -> None:
    """Stop the student code of this process's open sandboxes and remove the
    sandboxes, from any thread: a batch worker whose grader died does this
    before it exits, whatever its main thread was doing."""
    for uid, tear_down in list(_LIVE.items()):
        tear_down()
        _LIVE.pop(uid, None)
