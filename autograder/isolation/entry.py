"""The kernel's last step, shared by every runner: run as root by the grader
(after `unshare`, in a fork server's fresh namespaces, or in the grading
container), it joins the submission's cgroups, hands it the connection file,
makes the kernel the first to go when memory runs out, builds the kernel's
file system where the spec lists one, applies limits, drops to the
submission's own user for good, refuses the system calls no notebook needs
(a seccomp filter, through libseccomp), and replaces itself with the kernel.

The view (namespaces only) is a fresh tmpfs root holding read-only binds of
the system and the Python environment, a generated /etc, a private /proc, a
minimal /dev, the public assets at /assets, the working and runtime folders,
private temp folders; then `pivot_root` into it and the host's tree is
detached: an allow-list, nothing of the host that the list does not name.

A fresh uid, never a fixed account: process limits count per uid across the
whole machine, so one submission's fork bomb must not use up another's.

Off root (the "user-namespace" runner, user_namespace.py) the same steps run
as root of an unprivileged user namespace (`unshare --map-root-user`), which
may make the view's mounts; the spec then says `same_user`: no cgroups, no
process limit (it would count the user's own desktop), and in place of the
uid change a nested user namespace gives the kernel back the user's own ids,
so that it keeps no capability across its exec.

This file is run as a script (never imported by the grader) and uses only
the standard library, so nothing from the grader's package loads here.
Usage: python -I entry.py SPEC_JSON -- KERNEL_ARGV...
The fork server (forkserver.py) imports it for `enter`, the same steps
without the final exec. The spec is made by `workspace.privilege_drop`.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import resource
import signal
import sys
from typing import Any

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PDEATHSIG = 1
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_MS_NOATIME, _MS_NODIRATIME, _MS_RELATIME, _MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
_ST_RELATIME = 4096  # statvfs's bit for relatime (its other bits are the MS_ values)
_MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_LIBC = ctypes.CDLL(None, use_errno=True)

# System calls the kernel is refused (EPERM), whatever its uid: the kernel's
# keyrings outlive every process of a uid, so a key readable by all would carry
# a message to the next submission (and is kept in the host kernel's memory);
# io_uring and userfaultfd are the usual ways out of a sandbox, and no notebook
# needs them (Docker's default profile refuses them too).
REFUSED_CALLS = (
    "add_key",
    "keyctl",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
)
# unshare(2) and clone(2) with CLONE_NEWUSER: a user namespace of its own gives
# the kernel every capability over new network and mount namespaces (nf_tables,
# raw packets, mounts: where most Linux privilege escalations start). clone3
# takes its flags in a struct a filter cannot read, so it answers ENOSYS and
# glibc falls back to clone (Docker's default profile does the same).
_CLONE_NEWUSER = 0x10000000
REFUSED_FLAGS = {"unshare": _CLONE_NEWUSER, "clone": _CLONE_NEWUSER}  # call -> flags in its first argument
UNAVAILABLE_CALLS = ("clone3",)
_SCMP_ACT_ALLOW = 0x7FFF0000
_SCMP_ACT_ERRNO = 0x00050000  # | the errno returned
_SCMP_ACT_KILL_PROCESS = 0x80000000
_SCMP_FLTATR_ACT_BADARCH = 2  # what a call made through another architecture's entry (int 0x80) gets
_SCMP_CMP_MASKED_EQ = 7
_NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name: not a call of this architecture


class _ArgumentTest(ctypes.Structure):
    """libseccomp's `struct scmp_arg_cmp`."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _mount(source: str | None, target: str, kind: str | None, flags: int, data: str | None = None) -> None:
    """mount(2) itself: the mount(8) command would cost a process each time and
    would resolve /proc/self/fd paths by name."""
    encoded = [None if value is None else value.encode() for value in (source, target, kind, data)]
    if _LIBC.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]) != 0:
        raise OSError(ctypes.get_errno(), f"cannot mount {source or kind} on {target}")


def _tmpfs(target: str, options: str, flags: int = _MS_NOSUID | _MS_NODEV) -> None:
    os.makedirs(target, mode=0o755, exist_ok=True)
    _mount("tmpfs", target, "tmpfs", flags, options)


def _bind(source: str, target: str, *, writable: bool = False, devices: bool = False) -> None:
    """Bind `source` at `target` (made as a folder or an empty file to match),
    read-only unless `writable`; never a device node unless `devices`."""
    if os.path.isdir(source):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
    _mount(source, target, None, _MS_BIND | _MS_REC)
    flags = _MS_BIND | _MS_REMOUNT | _MS_NOSUID | (0 if devices else _MS_NODEV) | (0 if writable else _MS_RDONLY)
    _mount(None, target, None, flags | _kept_flags(source))


def _kept_flags(source: str) -> int:
    """The restrictions of the mount holding `source`, kept by the remount: in a
    user namespace the kernel refuses a remount that would drop them."""
    found = os.statvfs(source).f_flag
    flags = found & (_MS_NOSUID | _MS_NODEV | _MS_NOEXEC | _MS_NOATIME | _MS_NODIRATIME)
    if found & _ST_RELATIME:
        flags |= _MS_RELATIME
    elif not found & _MS_NOATIME:
        flags |= _MS_STRICTATIME
    return flags


def _build_root(view: dict[str, Any]) -> None:
    """The kernel's file system, from the view's lists alone, at view["root"]."""
    root: str = view["root"]
    _tmpfs(root, "size=16m,mode=0755")

    def inside(path: str) -> str:  # every path in the spec is absolute
        return root + path

    # the private temp folders first: what is bound below them afterwards (an
    # environment or a checkout under /tmp) shows through instead of being covered
    for path in view["scratch"]:
        if not path.startswith("/dev/"):
            _tmpfs(inside(path), f"size={view['scratch_mb']}m,mode=1777")

    for path in view["read_only"]:
        _bind(path, inside(path))
    for link, target in view["symlinks"].items():
        os.symlink(target, inside(link))
    for name, text in view["etc"].items():
        os.makedirs(inside("/etc"), mode=0o755, exist_ok=True)
        with open(inside(f"/etc/{name}"), "w") as handle:
            handle.write(text)
    os.makedirs(inside("/proc"), mode=0o555)
    _mount("proc", inside("/proc"), "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    _tmpfs(inside("/dev"), "size=64k,mode=0755", _MS_NOSUID | _MS_NOEXEC)
    for device in view["devices"]:
        _bind(device, inside(device), writable=True, devices=True)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, inside(f"/dev/{name}"))
    if view["assets"]:
        _bind(view["assets"], inside("/assets"))
    for path in view["writable"]:
        _bind(path, inside(path), writable=True)
    for path in view["scratch"]:  # private, size-capped, empty
        if path.startswith("/dev/"):
            _tmpfs(inside(path), f"size={view['scratch_mb']}m,mode=1777")
    if view["kaggle"]:
        for relative, target in view["kaggle"].items():
            link = inside(f"/kaggle/{relative}")
            os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
            os.symlink(target, link)


def _pivot_into(root: str) -> None:
    """Make `root` the file system's root and detach the host's tree entirely."""
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    os.chdir(root)
    if _LIBC.syscall(number, b".", b".") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root failed")
    if _LIBC.umount2(b".", _MNT_DETACH) != 0:
        raise OSError(ctypes.get_errno(), "cannot detach the host's root")
    os.chdir("/")
    _mount(None, "/", None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)


def _filter_library() -> ctypes.CDLL:
    """libseccomp (Debian's libseccomp2), which writes the filter's BPF for this
    architecture; loaded before the view hides the host's libraries."""
    try:
        library = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as error:
        raise OSError(
            "libseccomp.so.2 is missing, so the kernel's system-call filter cannot be built "
            "(install Debian's libseccomp2)"
        ) from error
    library.seccomp_init.restype = ctypes.c_void_p
    library.seccomp_init.argtypes = [ctypes.c_uint32]
    library.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    library.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_void_p,
    ]
    library.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    library.seccomp_load.argtypes = [ctypes.c_void_p]
    library.seccomp_release.argtypes = [ctypes.c_void_p]
    return library


def _refuse_calls(library: ctypes.CDLL) -> None:
    """Load the filter: `REFUSED_CALLS` get EPERM, `REFUSED_FLAGS` get EPERM
    when their first argument holds those flags, `UNAVAILABLE_CALLS` ENOSYS,
    and a call through another architecture's entry kills the process. It
    holds for this process and everything it starts, across exec
    (no_new_privs is set first)."""
    context = library.seccomp_init(_SCMP_ACT_ALLOW)
    if not context:
        raise OSError("seccomp_init failed")
    try:
        code = library.seccomp_attr_set(context, _SCMP_FLTATR_ACT_BADARCH, _SCMP_ACT_KILL_PROCESS)
        if code != 0:
            raise OSError(-code, "cannot make the system-call filter kill calls of other architectures")
        rules: list[tuple[str, int, _ArgumentTest | None]] = [
            *((name, errno.EPERM, None) for name in REFUSED_CALLS),
            *((name, errno.EPERM, _ArgumentTest(0, _SCMP_CMP_MASKED_EQ, f, f)) for name, f in REFUSED_FLAGS.items()),
            *((name, errno.ENOSYS, None) for name in UNAVAILABLE_CALLS),
        ]
        for name, answer, test in rules:
            number = library.seccomp_syscall_resolve_name(name.encode())
            if number == _NR_SCMP_ERROR:
                continue
            tests = ctypes.byref(test) if test is not None else None
            code = library.seccomp_rule_add_array(
                context, _SCMP_ACT_ERRNO | answer, number, int(test is not None), tests
            )
            if code != 0:
                raise OSError(-code, f"cannot add {name} to the system-call filter")
        code = library.seccomp_load(context)
        if code != 0:
            raise OSError(-code, "cannot load the system-call filter")
    finally:
        library.seccomp_release(context)


def enter(spec: dict[str, Any], connection_file: str | None) -> None:
    """Everything but starting the kernel: this process ends as the submission's
    user, in its working folder, with its limits, inside the view the spec
    lists where it lists one (then it must be PID 1 of a fresh PID namespace,
    whose /proc it shows)."""
    uid, gid = spec["uid"], spec.get("gid", spec["uid"])
    same_user = bool(spec.get("same_user"))  # root of an unprivileged user namespace, becoming its user again
    calls_filter = _filter_library()

    for procs in spec.get("cgroups", []):  # every process the kernel starts stays in these groups
        with open(procs, "w") as handle:
            handle.write(str(os.getpid()))

    if connection_file is not None and not same_user:  # the user's own file already where it stays that user
        os.chown(connection_file, uid, gid)
    with open("/proc/self/oom_score_adj", "w") as handle:  # the kernel dies first, never the grader
        handle.write("1000")

    view = spec.get("view")
    if view:
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)  # nothing below propagates back to the host
        _build_root(view)
        _pivot_into(view["root"])

    limits = {
        resource.RLIMIT_CPU: (spec["cpu_seconds"], spec["cpu_seconds"] + 5),
        resource.RLIMIT_FSIZE: (spec["file_bytes"], spec["file_bytes"]),
        resource.RLIMIT_NOFILE: (1024, 1024),
        resource.RLIMIT_CORE: (0, 0),
    }
    if "processes" in spec:
        limits[resource.RLIMIT_NPROC] = (spec["processes"], spec["processes"])
    for kind, (soft, hard) in limits.items():
        _, current = resource.getrlimit(kind)
        hard = hard if current == resource.RLIM_INFINITY else min(hard, current)  # only ever lowered
        resource.setrlimit(kind, (min(soft, hard), hard))

    if same_user:
        _become_own_user(uid, gid)
    else:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    if _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    # The uid change cleared the parent-death signal (`unshare --kill-child`,
    # the fork server's holder): set it again, so that the kernel, PID 1 of
    # its namespace and so everything it started, dies with its parent.
    # Never where the parent is the grader: it dies with the grader's thread.
    if spec.get("die_with_parent") and _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    _refuse_calls(calls_filter)
    os.chdir(spec["workdir"])


def _become_own_user(uid: int, gid: int) -> None:
    """From root of an unprivileged user namespace back to the user's own ids,
    in a nested user namespace where no id is 0: its capabilities end at the
    exec, and the view's mounts belong to the namespace above, out of its reach."""
    if _LIBC.unshare(_CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "cannot make the kernel's own user namespace")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} 0 1"), ("gid_map", f"{gid} 0 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)


def main() -> None:
    spec = json.loads(sys.argv[1])
    kernel = sys.argv[sys.argv.index("--") + 1 :]
    enter(spec, kernel[kernel.index("-f") + 1] if "-f" in kernel else None)
    os.execve(kernel[0], kernel, spec["env"])


if __name__ == "__main__":
    main()
