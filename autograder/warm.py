"""The `autograder` command's entry point: a warm start where it pays.

`autograder grade NOTEBOOK` used to import torch twice: in the grader (the
checks compare tensors) and in the fork server its kernels are forked from.
Here `grade` and `check` of a few notebooks (no `--out`, no `--docker`), as
root where the sandbox can be built or as a student on Linux, start the fork
server first and have it fork the grader itself (a worker: forkserver.py,
`_worker`), which adopts the server for its kernels (the sandbox's, or off
root the user-namespace view's): one torch import serves the grader, its
checks and its kernels. This process only passes its arguments, environment, folder,
standard streams and signals on, and exits with the worker's code.

The server's memory never holds a check or a submission: the worker, a fork
of it, is the only process that reads them, and kernels are forked from the
server alone (SECURITY.md, "Kernels and the fork server"). Everything else,
and any warm start that cannot begin, runs the command line here as before
(`cli.main`). `AUTOGRADER_WARM=0` turns it off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

_WARM_COMMANDS = ("grade", "check")
_COLD_OPTIONS = ("--out", "--docker", "--dask", "-h", "--help")  # a batch's own workers; a container; help


def main() -> None:
    if wanted(sys.argv[1:]):
        code = run_warm(sys.argv)
        if code is not None:
            sys.exit(code)
    from autograder.cli import main as cold_main

    cold_main()


def wanted(args: Sequence[str]) -> bool:
    """Whether this command line is one a warm start serves here (an honest
    guess from the words alone: a wrong one costs time, never a result)."""
    if sys.platform != "linux" or os.environ.get("AUTOGRADER_IN_CONTAINER") == "1":
        return False
    if os.environ.get("AUTOGRADER_WARM", "1") == "0" or os.environ.get("AUTOGRADER_FORKSERVER", "1") == "0":
        return False
    words = list(args)
    while words and words[0].startswith("--course"):  # the group's one option
        words = words[1:] if "=" in words[0] else words[2:]
    if not words or words[0] not in _WARM_COMMANDS:
        return False
    return not any(word.split("=", 1)[0] in _COLD_OPTIONS for word in words[1:])


def run_warm(argv: Sequence[str]) -> int | None:
    """Run the command line in a worker forked from a fresh fork server; its
    exit code, or None where no server could start (then run it cold)."""
    from autograder.isolation.forkserver import served
    from autograder.isolation.namespaces import ForkServer, missing_for_the_sandbox

    if os.geteuid() == 0 and missing_for_the_sandbox():
        return None  # root without the sandbox (the fresh-uid tier): its kernels are not forked
    server = ForkServer(own_session=True, preload=_preload(argv))
    try:
        if not server.ready():
            return None
        job = {
            "argv": list(argv),
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "path": list(sys.path),
            "encoding": sys.stdout.encoding or "utf-8",
            "threads": _grader_threads(),
        }
        return served(str(server.socket), {"worker": job})
    finally:
        server.stop()


def _preload(argv: Sequence[str]) -> tuple[str, ...]:
    """torchvision where a notebook named may use it: importing it costs about a
    second (it loads torch's compiler), which a torch-only notebook need not
    pay. Only this process looks at the files, and only for the word; the
    server is told a module's name, nothing of a submission."""
    named = [Path(word) for word in argv[1:] if not word.startswith("-")]
    notebooks = [path for path in named if path.suffix == ".ipynb" and path.is_file()]
    if any(path.is_dir() for path in named) or any(_mentions(path, b"torchvision") for path in notebooks):
        return ("torchvision",)
    return ()


def _mentions(path: Path, word: bytes, limit: int = 64 << 20) -> bool:
    try:
        with path.open("rb") as notebook:
            return word in notebook.read(limit) or bool(notebook.read(1))  # past the limit: assume it does
    except OSError:
        return True


def _grader_threads() -> int:
    """The threads torch would have used in a grader of its own (the server's are the kernels')."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    return int(threads) if threads.isdigit() and int(threads) > 0 else len(os.sched_getaffinity(0))
