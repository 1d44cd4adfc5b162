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
import dataclasses
import functools
import glob
import json
import os
import secrets
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from autograder.assets import default_store
from autograder.config import AssignmentConfig
from autograder.errors import AutograderError

_ENTRY = Path(__file__).with_name("sandbox_entry.py")
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
_NAMESPACES = ("unshare", "--mount", "--net", "--ipc", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc")
_OWNER = "owner"  # in each sandbox and fork-server folder: "PID START_TIME" of the grader process it belongs to
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
    assets: Path | None = None  # the public assets as the kernel sees them; None: at their host path
    isolation: str = ""  # which runner, and why nothing stronger: recorded in the result


@dataclass(frozen=True)
class Isolation:
    """Which runner this machine gives a kernel, and why nothing stronger."""

    kind: str  # "namespaces" (the full sandbox), "container", "user" (a fresh uid only), "none"
    reason: str = ""  # why not the full sandbox, in the machine's own terms


def isolation_here() -> Isolation:
    """The strongest isolation this machine can build, with the real reason for anything less."""
    from autograder.container import in_container  # container.py imports this module

    if in_container():
        return Isolation("container")
    missing = [
        why
        for failed, why in (
            (sys.platform != "linux", f"not Linux ({sys.platform})"),
            (os.geteuid() != 0, "not root"),
            (shutil.which("unshare") is None, "no unshare(1)"),
            (
                not all((_CGROUP_ROOT / c).is_dir() for c in _CONTROLLERS),
                f"no cgroup v1 memory and pids controllers under {_CGROUP_ROOT}",
            ),
            (os.environ.get("AUTOGRADER_NO_SANDBOX") == "1", "AUTOGRADER_NO_SANDBOX=1"),
        )
        if failed
    ]
    if not missing:
        return Isolation("namespaces")
    if sys.platform == "linux" and os.geteuid() == 0 and os.environ.get("AUTOGRADER_NO_SANDBOX") != "1":
        return Isolation("user", "; ".join(missing))
    return Isolation("none", "; ".join(missing))


def sandbox_available() -> bool:
    """True where the full sandbox can be built: root on Linux with cgroup v1 memory and pids."""
    return isolation_here().kind == "namespaces"


class IsolationRefusedError(AutograderError, PermissionError):
    """Hidden material would sit within reach of the student's code: refused
    unless the instructor waives isolation by name."""

    exit_code = 1


@contextlib.contextmanager
def open_workspace(
    config: AssignmentConfig, *, hidden_material: Sequence[Path] = (), waiver: str = ""
) -> Iterator[Workspace]:
    """A fresh workspace for one submission, isolated as strongly as this machine
    allows; removed on exit. `hidden_material` (solutions, hidden assets) must be
    out of the kernel's reach: where the isolation cannot promise that, this
    refuses unless `waiver` names who waived it."""
    from autograder.container import container_workspace  # container.py imports this module

    isolation = isolation_here()
    if isolation.kind == "container":  # inside the grading image, where the container is the sandbox
        with container_workspace(config, kernel_env=_kernel_env, kernel=_KERNEL) as workspace:
            yield dataclasses.replace(workspace, isolation="container")
    elif isolation.kind == "namespaces":
        with _sandboxed(config) as workspace:
            yield dataclasses.replace(workspace, isolation="namespaces")
    else:
        exposed = [str(p) for p in hidden_material if isolation.kind == "none" or _reachable_by_others(p)]
        if exposed and not waiver:
            raise IsolationRefusedError(_refusal(isolation, exposed))
        noted = f"; waived: {waiver}" if exposed else ""
        runner = _unprivileged if isolation.kind == "user" else _unisolated
        with runner(config, f"{isolation.kind} ({isolation.reason}{noted})") as workspace:
            yield workspace


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
    import stat

    path = path.resolve()
    if not path.exists():
        return False
    for folder in [*reversed(path.parents), path][:-1]:
        if not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


@contextlib.contextmanager
def _unisolated(config: AssignmentConfig, description: str) -> Iterator[Workspace]:
    """Not root (a student self-checking): the kernel runs as the user. It is the
    student's own code on the student's own machine."""
    with tempfile.TemporaryDirectory(prefix="autograder-") as scratch:
        root = Path(scratch)
        (root / "work").mkdir()
        (root / "runtime" / "ipython").mkdir(parents=True)
        env = _kernel_env(root / "work", root / "runtime", tmp=Path(tempfile.gettempdir()))
        launch = KernelLaunch((sys.executable, *_KERNEL), env, sandbox=description)
        yield Workspace(root / "work", root / "runtime", launch, isolation=description)


@contextlib.contextmanager
def _unprivileged(config: AssignmentConfig, description: str) -> Iterator[Workspace]:
    """Root, but no namespaces or cgroups (a cgroup-v2-only host, Gradescope's
    runner): the kernel gets a fresh uid with no groups, rlimits, no_new_privs and
    a clean environment, in 0700 folders of its own; everything of that uid is
    killed when the submission ends."""
    uid = 200_000 + secrets.randbelow(1_000_000_000)
    with tempfile.TemporaryDirectory(prefix="autograder-user-") as scratch:
        workdir, runtime = Path(scratch) / "work", Path(scratch) / "runtime"
        for folder in (workdir, runtime, runtime / "ipython", runtime / "matplotlib"):
            folder.mkdir(mode=0o700)
            os.chown(folder, uid, uid)
        Path(scratch).chmod(0o711)
        spec = {
            "uid": uid,
            "workdir": str(workdir),
            "cpu_seconds": int(config.notebook_timeout_s * 2 + 120),
            "file_bytes": config.scratch_mb * 1024 * 1024,
            "processes": config.processes,
            "env": _kernel_env(workdir, runtime, tmp=runtime),
        }
        entry = Path(__file__).with_name("container_entry.py")  # the same privilege drop as in the image
        argv = (sys.executable, "-I", str(entry), json.dumps(spec), "--", sys.executable, *_KERNEL)
        launch = KernelLaunch(argv, {}, sandbox=f"uid {uid}, {description}")
        try:
            yield Workspace(workdir, runtime, launch, isolation=description)
        finally:
            kill_everything_of(uid)


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


def _kernel_env(workdir: Path, runtime: Path, *, tmp: Path, assets: Path | None = None) -> dict[str, str]:
    """A clean environment: nothing of the grader's own is passed on. `assets`:
    where the kernel sees the public assets (default: their host path)."""
    torch_home = default_store().torch_home if assets is None else assets / "torch"
    return {
        **_clean_env(home=workdir, tmp=tmp),
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(runtime / "matplotlib"),
        "IPYTHONDIR": str(runtime / "ipython"),
        # torchvision finds weights in $TORCH_HOME/hub/checkpoints, read-only, no network
        "TORCH_HOME": str(torch_home),
    }


@contextlib.contextmanager
def _sandboxed(config: AssignmentConfig) -> Iterator[Workspace]:
    uid = 200_000 + secrets.randbelow(1_000_000_000)
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
        _claim(home)  # before anything else is made: a sandbox with no live owner is a leftover
        for folder, size in ((workdir, config.scratch_mb), (runtime, 64)):  # capped: nothing lands on the host's disk
            folder.mkdir(mode=0o700)
            _mount_tmpfs(folder, f"size={size}m,mode=0700,uid={uid},gid={uid}")
        root.mkdir(mode=0o700)
        for folder in (runtime / "ipython", runtime / "matplotlib"):
            folder.mkdir(mode=0o700)
            os.chown(folder, uid, uid)
        _make_cgroups(cgroups, config)
        spec = {
            "uid": uid,
            "workdir": str(workdir),
            "cgroups": [str(c / "cgroup.procs") for c in cgroups],
            **kernel_view(uid=uid, workdir=workdir, runtime=runtime, root=root, kaggle=_kaggle_links(config, workdir)),
            "scratch_mb": config.scratch_mb,
            "file_bytes": config.scratch_mb * 1024 * 1024,
            "cpu_seconds": int(config.notebook_timeout_s * 2 + 120),
            "processes": config.processes,
            "env": _kernel_env(workdir, runtime, tmp=Path("/tmp"), assets=ASSETS_VIEW),
        }
        kernel = [sys.executable, *_KERNEL]
        server = _ForkServer.get()
        argv: list[str]
        if server is not None:  # the same sandbox, entered by a fork of a process with torch imported
            argv = [sys.executable, "-I", "-S", str(_FORKSERVER), "launch", str(server.socket), json.dumps(spec)]
        else:
            argv = [*_NAMESPACES, sys.executable, str(_ENTRY), json.dumps(spec)]
        argv += ["--", *kernel]
        description = f"uid {uid}, {config.memory_mb} MiB, {config.processes} processes, no network"
        launch = KernelLaunch(tuple(argv), {}, sandbox=description)
        yield Workspace(workdir, runtime, launch, assets=ASSETS_VIEW)
    finally:
        _tear_down(uid, cgroups, home)
        _LIVE.pop(uid, None)


def kernel_view(*, uid: int, workdir: Path, runtime: Path, root: Path, kaggle: dict[str, str]) -> dict[str, Any]:
    """The sandboxed kernel's whole file system, as lists `sandbox_entry` mounts
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
        read_only += [p for p in libraries if os.path.isabs(p) and os.path.isdir(p) and not _covered(p, read_only)]
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
        if os.path.isdir(folder) and not _covered(folder, [*already, *folders]):
            folders.append(folder)
    return folders


def _covered(path: str, folders: Iterable[str]) -> bool:
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


def _claim(folder: Path) -> None:
    """Mark `folder` as this process's: its pid and start time (pids are reused)."""
    (folder / _OWNER).write_text(f"{os.getpid()} {_start_time(os.getpid())}")


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command's name


def _owned_by_the_living(folder: Path) -> bool:
    """True while the process that claimed `folder` runs; a folder being made
    right now (no record yet) counts as alive for a minute."""
    try:
        pid, _, started = (folder / _OWNER).read_text().partition(" ")
    except OSError:
        with contextlib.suppress(OSError):
            return time.time() - folder.stat().st_mtime < 60
        return False
    return pid.isdigit() and started == _start_time(int(pid))


def remove_leftovers_of_dead_graders() -> None:
    """What graders killed outright (SIGKILL, the OOM killer) left behind:
    their sandboxes' processes, mounts, cgroups and folders, their fork servers'
    folders. A live grader's, a concurrent one's included, are never touched."""
    base = _sandbox_base()
    controllers = [*_CONTROLLERS, _CPU]
    for home in base.glob("s[0-9]*"):
        if home.name[1:].isdigit() and not _owned_by_the_living(home):
            cgroups = [_CGROUP_ROOT / c / "autograder" / home.name for c in controllers]
            _tear_down(int(home.name[1:]), [c for c in cgroups if c.is_dir()], home)
    for controller in controllers:  # a cgroup outlives its folder when its grader died tearing down
        for cgroup in (_CGROUP_ROOT / controller / "autograder").glob("s[0-9]*"):
            # empty and old only: a grader with another AUTOGRADER_SANDBOX_DIR keeps its folders elsewhere
            if not (base / cgroup.name).exists() and not _members(cgroup) and _older_than(cgroup, 60):
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
    for folder in base.parent.glob("forkserver-*"):
        if not _owned_by_the_living(folder):
            shutil.rmtree(folder, ignore_errors=True)


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


class _ForkServer:
    """This process's fork server (forkserver.py), started on first use and
    stopped when the process exits. Off with AUTOGRADER_FORKSERVER=0; where it
    cannot start, kernels start the plain way (and the reason is kept)."""

    _current: _ForkServer | None = None
    _failed: str | None = None

    def __init__(self) -> None:
        base = _sandbox_base().parent
        base.mkdir(parents=True, exist_ok=True)
        remove_leftovers_of_dead_graders()
        self.folder = Path(tempfile.mkdtemp(prefix="forkserver-", dir=base))  # 0700, root's
        _claim(self.folder)
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


def kill_everything_of(uid: int, cgroups: Iterable[Path] = (), timeout_s: float = 10.0) -> None:
    """SIGKILL every process of the submission's user and in its cgroups, until
    none exists at all (zombies included). The one killer of every runner: the
    sandbox, the fresh-uid tier, the grading container."""
    cgroups = list(cgroups)
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
