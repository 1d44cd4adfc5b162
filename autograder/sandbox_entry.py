"""The sandbox's last step before the kernel: run as root inside fresh mount,
network, IPC and PID namespaces (made by `unshare`), it hides what the student
must not see, applies limits, drops to the submission's own user for good,
and replaces itself with the kernel.

This file is run as a script (never imported by the grader) and uses only
the standard library, so nothing from the grader's package loads here.
Usage: python sandbox_entry.py SPEC_JSON -- KERNEL_ARGV...
The fork server (forkserver.py) imports it for `enter`, the same steps
without the final exec.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
from typing import Any

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1
_MS_RDONLY, _MS_REMOUNT, _MS_BIND = 1, 32, 4096


def _mount(*arguments: str) -> None:
    subprocess.run(["mount", *arguments], check=True, stdin=subprocess.DEVNULL)


def _bind_read_only(source: str, target: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for flags, origin in ((_MS_BIND, source.encode()), (_MS_BIND | _MS_REMOUNT | _MS_RDONLY, None)):
        if libc.mount(origin, target.encode(), None, flags, None) != 0:
            raise OSError(ctypes.get_errno(), f"cannot bind {source} to {target}")


def _hide(path: str) -> None:
    """Cover a path with an empty, read-only tmpfs."""
    if os.path.isdir(path):
        _mount("-t", "tmpfs", "-o", "ro,size=4k,mode=0755,nosuid,nodev,noexec", "tmpfs", path)


def _kaggle(links: dict[str, str]) -> None:
    """Kaggle's paths, as links on a private read-only tmpfs at /kaggle."""
    _mount("-t", "tmpfs", "-o", "size=64k,mode=0755,nosuid,nodev", "tmpfs", "/kaggle")
    for relative, target in links.items():
        link = os.path.join("/kaggle", relative)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(target, link)
    _mount("-o", "remount,ro", "/kaggle")


def enter(spec: dict[str, Any], connection_file: str, *, mount_proc: bool = False) -> None:
    """Everything but starting the kernel: this process ends as the submission's
    user, in its working folder, with its mounts and limits. `mount_proc` where
    no `unshare --mount-proc` did it (this process is PID 1 of a fresh namespace)."""
    uid, gid = spec["uid"], spec["uid"]

    for procs in spec["cgroups"]:  # every process the kernel starts stays in these groups
        with open(procs, "w") as handle:
            handle.write(str(os.getpid()))

    os.chown(connection_file, uid, gid)

    _mount("--make-rprivate", "/")
    if mount_proc:  # this PID namespace's processes only
        _mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", "/proc")
    for path in spec["writable"]:  # a mount of its own stays writable below
        _mount("--bind", path, path)
    if spec["kaggle"]:  # an empty folder on the host, once: the mount point for /kaggle
        os.makedirs("/kaggle", mode=0o755, exist_ok=True)
    _mount("-o", "remount,bind,ro", "/")  # the root file system becomes read-only
    for path in spec["hide"]:
        _hide(path)
    if spec["kaggle"]:
        _kaggle(spec["kaggle"])
    # What the kernel needs but a private scratch folder would cover (a checkout
    # under /tmp, say) is held open now and bound back, read-only, afterwards.
    held = {
        path: os.open(path, os.O_PATH | os.O_DIRECTORY)
        for path in spec["needed"]
        if any(path == scratch or path.startswith(scratch.rstrip("/") + "/") for scratch in spec["scratch"])
    }
    for path in spec["scratch"]:  # private, size-capped, empty
        _mount("-t", "tmpfs", "-o", f"size={spec['scratch_mb']}m,mode=1777,nosuid,nodev", "tmpfs", path)
    for path, folder in held.items():
        os.makedirs(path, exist_ok=True)
        # the mount(8) command would resolve /proc/self/fd/N to the (now covered)
        # path name; the system call binds the very folder the handle holds
        _bind_read_only(f"/proc/self/fd/{folder}", path)
        os.close(folder)

    limits = {
        resource.RLIMIT_CPU: (spec["cpu_seconds"], spec["cpu_seconds"] + 5),
        resource.RLIMIT_FSIZE: (spec["file_bytes"], spec["file_bytes"]),
        resource.RLIMIT_NOFILE: (1024, 1024),
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_NPROC: (spec["processes"], spec["processes"]),
    }
    for kind, value in limits.items():
        resource.setrlimit(kind, value)

    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    # The uid change cleared the parent-death signal (`unshare --kill-child`,
    # the fork server's holder): set it again, so that the kernel, PID 1 of
    # its namespace and so everything it started, dies with its parent.
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    os.chdir(spec["workdir"])


def main() -> None:
    spec = json.loads(sys.argv[1])
    kernel = sys.argv[sys.argv.index("--") + 1 :]
    enter(spec, kernel[kernel.index("-f") + 1])
    os.execve(kernel[0], kernel, spec["env"])


if __name__ == "__main__":
    main()
