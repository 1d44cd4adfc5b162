"""The `autograder` command's entry point: a warm start where it pays.

`autograder grade NOTEBOOK` used to import torch twice: in the grader (the
checks compare tensors) and in the fork server its kernels are forked from.
Here `grade` and `check` of a few notebooks (no `--out`, no `--docker`), as
root where the sandbox can be built or as a student on Linux, start the fork
server first and have it fork the grader itself (a worker: forkserver.py,
`_worker`), which adopts the server for its kernels (the sandbox's, or off
root the user-namespace view's): one torch import serves the grader, its
checks and its kernels. This process only passes its arguments,
environment, folder, standard streams and signals on, and exits with the
worker's code.

The server's memory never holds a check or a submission: the worker, a fork
of it, is the only process that reads them, and kernels are forked from the
server alone (SECURITY.md, "The warm start"). Everything else,
and any warm start that cannot begin, runs the command line here as before
(`cli.main`). `AUTOGRADER_WARM=0` turns it off.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# The options of the commands a warm start serves that take a value, as cli.py
# declares them (tests/test_cli.py holds the two to each other).
VALUED = {
    "grade": frozenset(
        {
            *("-a", "--assignment", "--json", "--out", "-j", "--jobs", "--dask", "--student", "--roster"),
            *("--gradescope", "--cell-timeout", "--notebook-timeout", "--docker", "--gpus", "--memory", "--cpus"),
        }
    ),
    "check": frozenset(["-a", "--assignment", "--format"]),
}
_COLD_OPTIONS = ("--out", "--docker", "--dask", "-h", "--help")  # a batch's own workers; a container; help
_NOTEBOOK_LIMIT = 64 << 20  # bytes of a notebook read here; a larger one is graded cold (and likely refused)


def main() -> None:
    preload = _plan(sys.argv[1:])
    if preload is not None:
        code = run_warm(sys.argv, preload)
        if code is not None:
            sys.exit(code)
    from autograder.cli import main as cold_main

    cold_main()


def wanted(args: Sequence[str]) -> bool:
    """Whether this command line is one a warm start serves: `grade` or
    `check` of notebook files that are notebooks, as assignments the course
    has, on Linux outside the grading container. Anything it does not
    understand runs cold: a usage error or a rejected file is said at once,
    without importing torch first (a wrong guess costs time, never a result)."""
    return _plan(args) is not None


def _plan(args: Sequence[str]) -> tuple[str, ...] | None:
    """What the server should import besides torch and ipykernel where a warm
    start serves this command line (`wanted`); None where it does not.

    torchvision where a notebook named may use it: importing it costs about a
    second (it loads torch's compiler), which a torch-only notebook need not
    pay. Only this process looks at the files, and only for the word; the
    server is told a module's name, nothing of a submission."""
    if sys.platform != "linux" or os.environ.get("AUTOGRADER_IN_CONTAINER") == "1":
        return None
    if os.environ.get("AUTOGRADER_WARM", "1") == "0" or os.environ.get("AUTOGRADER_FORKSERVER", "1") == "0":
        return None
    parsed = _parsed(args)
    if parsed is None:
        return None
    course, names, words = parsed
    texts = [_notebook_text(Path(word)) for word in words]
    if not texts or None in texts:
        return None
    if not all((course / "assignments" / name / f"{name}.ipynb").is_file() for name in names):  # Course.names()
        return None
    if len(texts) != 1:  # several: whether one mentions it would be a bit of it in the others' kernels
        return ("torchvision",)
    return ("torchvision",) if "torchvision" in str(texts[0]) else ()


def _parsed(args: Sequence[str]) -> tuple[Path, list[str], list[str]] | None:
    """The course folder, the assignment names and the other words of a warm
    command line; None where it is not one."""
    rest = iter(args)
    course, command = None, next(rest, None)
    while command is not None and command.partition("=")[0] == "--course":  # the group's one option
        course = command.partition("=")[2] or next(rest, None)
        if not course:
            return None
        command = next(rest, None)
    if command not in VALUED:
        return None
    names, positional = [], []
    for word in rest:
        option, _, attached = word.partition("=")
        if option in _COLD_OPTIONS or word == "--":
            return None
        if option in VALUED[command]:
            value = attached or next(rest, None)
            if value is None:
                return None
            if option in ("-a", "--assignment"):
                names.append(value)
        elif not word.startswith("-"):
            positional.append(word)
    return (Path(course) if course else _default_course()), names, positional


def _default_course() -> Path:
    """Course.default()'s folder, without importing the grader."""
    package = Path(__file__).resolve().parent
    return package.parent if (package.parent / "assignments").is_dir() else package / "course"


def _notebook_text(path: Path) -> str | None:
    """A notebook file's text where it reads as a notebook (JSON holding a
    list of cells), read as intake reads it (a regular file, no link
    followed, capped); None for anything else: the grader then says why."""
    from autograder.staging import read_regular

    if path.suffix != ".ipynb":
        return None
    try:
        text = read_regular(path, limit=_NOTEBOOK_LIMIT).decode("utf-8")
        document = json.loads(text)
    except Exception:  # whatever it is (a link, a FIFO, too deep, too big), it is not for a warm start
        return None
    if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
        return None
    return text


def run_warm(argv: Sequence[str], preload: tuple[str, ...]) -> int | None:
    """Run the command line in a worker forked from a fresh fork server that
    also imported `preload`; its exit code, or None where no server could
    start (then run it cold)."""
    from autograder.isolation.forkserver import served
    from autograder.isolation.namespaces import ForkServer

    try:
        server = ForkServer(own_session=True, preload=preload)
    except OSError:  # no folder for its socket, no process: the command runs cold, as it did
        return None
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
        # the job (the grader's environment among it) goes to the worker alone, never through the server
        return served(str(server.socket), {"worker": True}, json.dumps(job).encode())
    finally:
        server.stop()


def _grader_threads() -> int:
    """The threads torch would have used in a grader of its own (the server's are the kernels')."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    return int(threads) if threads.isdigit() and int(threads) > 0 else len(os.sched_getaffinity(0))
