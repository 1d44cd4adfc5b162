"""A test not marked `slow` must start no kernel: `-m "not slow"` is the fast
part of the suite, and says so only while this holds.

While such a test runs (its fixtures' setup and teardown included), a thread
looks at this process's descendants every few hundredths of a second; one
started meanwhile whose command line names ipykernel or the fork server
(whose forks are the sandboxed kernels) fails the test at its teardown.
Grading in a subprocess (the CLI, a batch's workers) is seen the same way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

KERNEL_COMMANDS = ("ipykernel", "forkserver.py")
PROC = Path("/proc")


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process this one can see."""
    parents = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()  # the name, in brackets, may hold spaces
        except OSError:
            continue  # it ended meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


class KernelWatch:
    """Notes each descendant of this process, started while it watches, whose
    command line holds one of `patterns`."""

    def __init__(self, patterns: tuple[str, ...] = KERNEL_COMMANDS, every_s: float = 0.05) -> None:
        self.patterns, self.every_s = patterns, every_s
        self.started: dict[int, str] = {}  # pid -> command line
        self._known: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kernel-watch", daemon=True)

    def __enter__(self) -> KernelWatch:
        self._known = _descendants(os.getpid())
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._look()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._look()

    def _look(self) -> None:
        for pid in _descendants(os.getpid()) - self._known:
            self._known.add(pid)
            try:
                command = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(pattern in command for pattern in self.patterns):
                self.started[pid] = command.strip()


class KernelGuard:
    """The plugin (registered in conftest): one watch per test not marked slow."""

    def __init__(self) -> None:
        self._watch: KernelWatch | None = None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        if PROC.is_dir() and not item.get_closest_marker("slow"):
            self._watch = KernelWatch().__enter__()
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        try:
            result = yield
        finally:
            watch, self._watch = self._watch, None
            if watch is not None:
                watch.__exit__()
        if watch is not None and watch.started:
            started = "\n".join(f"  {pid}: {command[:200]}" for pid, command in sorted(watch.started.items()))
            pytest.fail(f"{item.nodeid} is not marked slow but started a kernel:\n{started}", pytrace=False)
        return result
