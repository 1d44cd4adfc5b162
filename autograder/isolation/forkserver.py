"""A fork server for sandboxed kernels: torch, torchvision and ipykernel are
imported once, and each submission's kernel is a fork of this process that
enters its own sandbox exactly as entry.py does (same namespaces,
cgroups, mounts, limits and fresh user) before it starts serving. A kernel
then costs a fork instead of an interpreter start and a torch import.

This file is run as a script (the grader imports only `served`, for a warm start), two ways:

    python forkserver.py serve SOCKET [--workers] [MODULE...]
        The server (root, started by the grader with a clean environment):
        imports torch, ipykernel and the MODULEs, prints "ready", and forks
        one kernel per connection (with --workers, a warm start's worker
        too). It exits when its standard input closes (the grader is gone).

    python -I -S forkserver.py launch SOCKET SPEC_JSON -- KERNEL_ARGV...
        What jupyter_client starts as "the kernel": asks the server for a
        kernel with its own standard streams, passes signals on to it, and
        exits with the kernel's exit code. Killed, it takes the kernel with it.

Per kernel the server forks a holder, which makes the new namespaces (as
`unshare` does) and forks the kernel, PID 1 of its PID namespace; the holder
waits for it, and kills it when the launcher's connection closes.

A warm start (warm.py, `autograder grade` of a few notebooks) asks the same
server for a worker instead: a fork that stays root, outside any sandbox,
takes the command's arguments, environment and folder, adopts this server
for its kernels, and runs the command line, so that one torch import serves
the grader and its kernels. Only a fork of the server (a worker) ever imports
a check or reads a submission; kernels are forked from the server alone,
whose memory holds neither (tests/hostile: the memory sentinel).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import struct
import sys
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
# the namespaces `unshare --mount --net --ipc --uts --pid` makes
_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC, _CLONE_NEWPID, _CLONE_NEWNET = (
    0x00020000,
    0x04000000,
    0x08000000,
    0x20000000,
    0x40000000,
)
_NAMESPACES = _CLONE_NEWNS | _CLONE_NEWUTS | _CLONE_NEWIPC | _CLONE_NEWPID | _CLONE_NEWNET
_CLONE_NEWUSER = 0x10000000  # off root (a spec with `same_user`): `unshare --user --map-root-user` adds it
_PR_SET_PDEATHSIG = 1
_MAX_REQUEST = 4 * 1024 * 1024  # a launcher's request: the sandbox's spec and the kernel's command
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _send(connection: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode()
    connection.sendall(struct.pack("!I", len(data)) + data)


def _receive(connection: socket.socket) -> dict[str, Any] | None:
    header = _exactly(connection, 4)
    if header is None:
        return None
    size = struct.unpack("!I", header)[0]
    if size > _MAX_REQUEST:
        return None
    data = _exactly(connection, size)
    return None if data is None else dict(json.loads(data))


def _exactly(connection: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        part = connection.recv(size - len(data))
        if not part:
            return None
        data += part
    return data


# --- the launcher -----------------------------------------------------------


def launch(path: str, spec: str, kernel: list[str]) -> int:
    code = served(path, {"spec": json.loads(spec), "kernel": kernel})
    if code is None:
        print("autograder: the fork server did not start the kernel", file=sys.stderr)
        return 1
    return code


def served(path: str, request: dict[str, Any], job: bytes | None = None) -> int | None:
    """Have the server at `path` fork what `request` asks for (a kernel, a
    worker) with this process's standard streams, pass signals on to it, and
    return its exit code; None if it was not started. A worker's `job` goes
    through a pipe that only the worker reads: the server never holds it."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    reader, writer = os.pipe() if job is not None else (-1, -1)
    try:
        connection.connect(path)
        fds = [0, 1, 2, *([reader] if job is not None else [])]
        socket.send_fds(connection, [b"\0"], fds)  # it writes where this process would
        _send(connection, request)
        if job is not None:
            os.close(reader)
            reader = -1
            with open(writer, "wb") as pipe:  # blocks until the worker has read it, if it is long
                writer = -1
                pipe.write(job)
        started = _receive(connection)
    except OSError:
        return None
    finally:
        for fd in (reader, writer):
            if fd >= 0:
                os.close(fd)
    if started is None or "pid" not in started:
        return None
    pid = int(started["pid"])

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    ended = _receive(connection)
    code = int(ended["exit"]) if ended else 1
    return code if code >= 0 else 128 - code


# --- the server -------------------------------------------------------------


def serve(path: str, also: list[str]) -> None:
    workers = "--workers" in also  # a warm start's server: it forks the grader's worker too
    also = [module for module in also if module != "--workers"]
    import importlib

    import entry  # noqa: F401  (beside this file)

    sys.path[:] = [p for p in sys.path if p != _HERE]  # the package's other modules are not top-level names
    import torch  # noqa: F401  (the point of this process: imported once, shared by every fork)
    from ipykernel import kernelapp  # noqa: F401

    for module in also:  # torchvision, where the notebooks use it (it imports torch's compiler: a second)
        importlib.import_module(module)

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o600)
    server.listen(64)
    print("ready", flush=True)
    holders: set[int] = set()
    while True:
        readable, _, _ = select.select([server, sys.stdin], [], [], 1.0)
        _reap(holders)
        if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1):
            break  # the grader is gone, and has ended its kernels: any left are orphans
        if server in readable:
            holders |= _accept(server, workers)
    server.close()
    with contextlib.suppress(OSError):
        os.unlink(path)
    for pid in holders:  # a kernel dies with its holder
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(holders, block=True)


def _reap(holders: set[int], *, block: bool = False) -> None:
    """Wait for ended holders (so their CPU time, and their kernels', counts as
    this process's children's)."""
    while holders:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            holders.clear()
            return
        if pid == 0:
            return
        holders.discard(pid)


def _accept(server: socket.socket, workers: bool) -> set[int]:
    """One launcher's request. Whatever arrives (a stranger's bytes, a stalled
    writer), it costs this connection only: the server keeps serving."""
    try:
        connection, _ = server.accept()
    except OSError:
        return set()
    fds: list[int] = []
    try:
        connection.settimeout(10)
        _, fds, _, _ = socket.recv_fds(connection, 1, 4)
        request = _receive(connection)
        if request is None:
            return set()
        kind = "worker" if workers and request.get("worker") is True else "spec"
        if kind == "worker":  # its job is on the fourth descriptor, for the worker alone to read
            if len(fds) != 4:
                return set()
        elif len(fds) != 3 or not isinstance(request.get(kind), dict):
            return set()
        connection.settimeout(None)
        holder = os.fork()
        if holder == 0:
            try:
                socket_path = server.getsockname()
                server.close()
                _hold(connection, request, fds, socket_path, worker=kind == "worker")
            finally:
                os._exit(70)
        return {holder}
    except Exception:  # anything a stranger sends costs this connection only
        return set()
    finally:
        connection.close()
        for fd in fds:
            os.close(fd)


def _hold(
    connection: socket.socket, request: dict[str, Any], fds: list[int], socket_path: str, *, worker: bool
) -> None:
    if not worker:
        _new_namespaces(bool(request["spec"].get("same_user")))
    child = os.fork()  # a kernel: PID 1 of the new PID namespace
    if child == 0:
        try:
            connection.close()
            if worker:
                _worker(fds, socket_path)
            else:
                _kernel(request, fds)
        finally:
            os._exit(70)
    for fd in fds:
        os.close(fd)
    _send(connection, {"pid": child})
    ended = os.pidfd_open(child)
    while True:
        readable, _, _ = select.select([connection.fileno(), ended], [], [])
        if ended in readable:
            break
        if not connection.recv(64):  # the launcher was killed: so is its kernel, or its worker
            _end(child)
            break
    _, status = os.waitpid(child, 0)
    with contextlib.suppress(OSError):
        _send(connection, {"exit": os.waitstatus_to_exitcode(status)})
    os._exit(0)


def _new_namespaces(own_user: bool) -> None:
    """The namespaces `unshare` makes for a kernel; off root, inside a user
    namespace of its own whose root is the user (as --map-root-user does)."""
    uid, gid = os.getuid(), os.getgid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_NAMESPACES | (_CLONE_NEWUSER if own_user else 0)) != 0:
        raise OSError(ctypes.get_errno(), "unshare failed")
    if own_user:
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)


def _end(child: int) -> None:
    """The launcher is gone: its kernel, or its worker, is killed outright. A
    worker killed so is a grader killed by SIGKILL: it writes no result, its
    kernels die with their holders, and the next grader removes its sandbox."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signal.SIGKILL)


def _kernel(request: dict[str, Any], fds: list[int]) -> None:
    import entry
    import torch
    from ipykernel import kernelapp

    libc = ctypes.CDLL(None, use_errno=True)
    # the holder gone, the kernel goes too (until the uid change in enter, which sets it again)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(3, 65536)  # nothing of the server's: its socket, its pipe, the launcher's connection
    spec, argv = request["spec"], list(request["kernel"])
    arguments = argv[argv.index("ipykernel_launcher") + 1 :]
    entry.enter(spec, arguments[arguments.index("-f") + 1])
    # from here on, the submission's user: only what a fresh kernel would have
    os.environ.clear()
    os.environ.update(spec["env"])
    import tempfile

    tempfile.tempdir = None
    threads = spec["env"].get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    sys.path[:] = [p for p in sys.path if p not in ("", _HERE)]
    sys.modules.pop("entry", None)
    sys.argv = [kernelapp.__file__, *arguments]
    code = 0
    try:
        kernelapp.launch_new_instance(argv=arguments)
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    os._exit(code)


def _worker(fds: list[int], socket_path: str) -> None:
    """The command line of a warm start, run in this fork as the launcher
    would have run it, with the server's torch already imported."""
    import io
    import traceback

    import torch

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the holder gone, so is the worker (as kill -9)
    with open(fds[3], "rb") as pipe:
        job = json.loads(pipe.read(_MAX_REQUEST + 1)[:_MAX_REQUEST])
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    os.closerange(3, 65536)  # nothing of the server's: its socket, its pipe, the launcher's connection
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    import tempfile

    tempfile.tempdir = None
    sys.path[:] = list(job["path"])
    sys.argv = list(job["argv"])
    # the streams anew, as Python makes them at start (the server's were pipes)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=job["encoding"])
    for fd, name in ((1, "stdout"), (2, "stderr")):
        written = io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False),
            encoding=job["encoding"],
            errors="backslashreplace" if fd == 2 else "strict",
            line_buffering=os.isatty(fd) or fd == 2,
            write_through=fd == 2,
        )
        setattr(sys, name, written)
    torch.set_num_threads(int(job["threads"]))
    from autograder.cli import main
    from autograder.isolation.namespaces import ForkServer

    ForkServer.adopt(socket_path)
    code = 0
    try:
        main()
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
        if not isinstance(error.code, (int, type(None))):
            print(error.code, file=sys.stderr)
    except BaseException:  # as the interpreter would: the traceback, and status 1
        traceback.print_exc()
        code = 1
    finally:
        import atexit

        atexit._run_exitfuncs()  # as the interpreter would at exit (the server's os._exit skips them)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    os._exit(code)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "launch":
        split = sys.argv.index("--")
        sys.exit(launch(sys.argv[2], sys.argv[3], sys.argv[split + 1 :]))
    else:
        sys.exit(
            f"usage: {sys.argv[0]} serve SOCKET [--workers] [MODULE...] | launch SOCKET SPEC_JSON -- KERNEL_ARGV..."
        )
