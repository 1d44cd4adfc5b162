"""The `student` API answered in this process, against a live namespace.

Two users need the checks without a kernel between them and the code:

- the self-check (`autograder.selfcheck`), which runs the public checks in
  the student's own kernel, against its namespace: the student's own code on
  the student's own machine, so no sandbox is needed here and none is claimed;
- people writing checks (`autograder.checkkit.run_check_files`), who run a
  check file against a plain dict in milliseconds.

Requests are answered by the kernel's own code (`wire.answer`) and decoded by
`StudentAPI`, so values cross the same codec with the same size bound, and a
check sees copies as data, never the namespace's objects: the verdict is the
one grading gives. Each call keeps its timeout where this process can
interrupt itself (the main thread on Unix, where Jupyter runs cells): a timer
raises `CallTimedOut` inside the running code (a BaseException: `except
Exception` does not catch it), again every half second if the code swallows
it, so a student's infinite loop ends the call, not the cell. A loop that
catches BaseException around all of its work can outlast it, as it outlasts
Jupyter's interrupt button; grading kills such a kernel, a self-check cannot.
Elsewhere calls are not bounded in time (`bounded` says which).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any

from autograder import wire
from autograder.student_api import StudentAPI

_REPEAT_S = 0.5  # how often a swallowed timeout is raised again


class CallTimedOut(BaseException):  # named wire.STOP, which the kernel's code lets through
    """Raised inside the student's code when an in-process call runs past its time."""


assert CallTimedOut.__name__ == wire.STOP


class NamespaceStudent(StudentAPI):
    """The checks' `student` for `namespace`, a live dict of the student's names:
    a kernel's `user_ns`, or a dict a check author builds."""

    def __init__(
        self,
        namespace: MutableMapping[str, Any],
        *,
        timeout_s: float = 30.0,
        max_bytes: int = 64 << 20,
        workdir: Path | None = None,
        shown: Mapping[str, Path] | None = None,
    ) -> None:
        super().__init__(timeout_s=timeout_s, max_bytes=max_bytes, workdir=workdir, shown=shown)
        self.namespace = namespace
        self.late_recorder = False  # the figure recorder started after figures may have been drawn

    @property
    def bounded(self) -> bool:
        """Whether calls made from here end at their timeout."""
        return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()

    def _exchange(self, request: dict[str, Any], *, seconds: float, by_budget: bool) -> dict[str, Any]:
        text = json.dumps(request)
        namespace: Any = self.namespace
        if not self.bounded:
            reply: dict[str, Any] = json.loads(wire.answer(text, namespace))
            return reply
        fired = False

        def stop(_signal: int, _frame: FrameType | None) -> None:
            nonlocal fired
            fired = True
            raise CallTimedOut

        previous = signal.signal(signal.SIGALRM, stop)
        answer = ""
        try:
            signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001), _REPEAT_S)
            answer = wire.answer(text, namespace)
            signal.setitimer(signal.ITIMER_REAL, 0)
        except CallTimedOut:
            pass
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if fired or not answer:
            raise self._timed_out(by_budget=by_budget)
        reply = json.loads(answer)
        return reply
