"""Every error the grader raises on purpose.

The tree, with the CLI exit code each one maps to::

    AutograderError (Exception)                       exit 1
    +-- UsageError (ValueError)                       exit 2
    |   +-- UnknownAssignmentError (LookupError)      exit 2
    +-- NotANotebookError (ValueError)                exit 2
    +-- ConfigError (ValueError)                      exit 2
    +-- ReportWriteError (OSError)                    exit 1
    +-- AssetError (FileNotFoundError)                exit 3
    +-- BridgeError (RuntimeError)                    exit 1
        +-- StudentNameError (NameError)              a name the check asked for is missing
        +-- StudentCodeError (RuntimeError)           student code raised while a check called it
        +-- BridgeTimeoutError (TimeoutError)         the kernel did not answer in time
        +-- KernelUnavailableError (ConnectionError)  the kernel died or was stopped
        +-- UnsafeValueError (ValueError)             a value too large or not decodable as data

Bridge errors are raised inside checks; the check runner turns them into a
failed check with the error's message, so the student reads why. A hidden
check shows `without_kernel_text` instead: the student's code runs beside a
hidden check's code and inputs, and can write them into any text it gives
back (a message, an exception's name), so only the grader's own words leave.
"""

from __future__ import annotations

import builtins
from typing import Any

# Exception names a hidden check may repeat: Python's own; any other name is the notebook's choice.
_PYTHON_EXCEPTIONS = frozenset(
    name for name, value in vars(builtins).items() if isinstance(value, type) and issubclass(value, BaseException)
)


def exception_for_hidden(name: str) -> str:
    """How a hidden check names an exception the notebook's code raised."""
    return name if name in _PYTHON_EXCEPTIONS else "an exception of the notebook's own class"


_SHOWN_DIMENSIONS = 4
_SHOWN_SIZE = 100_000


def shape_for_hidden(shape: Any) -> str:
    """How a hidden check shows a shape the notebook's code made: in full when
    it is one a tensor of a course's size has (at most 4 dimensions of at most
    100,000), else only how many dimensions it has. A zero-element tensor can
    have 64 dimensions of any size, which would carry some 480 bytes of the
    student's choosing (the probe's code, read from the kernel) into the
    student's feedback."""
    try:
        sizes = tuple(int(size) for size in shape)
    except (TypeError, ValueError):
        return "an unreadable shape"
    if len(sizes) <= _SHOWN_DIMENSIONS and all(0 <= size <= _SHOWN_SIZE for size in sizes):
        return str(sizes)
    return f"a shape of {min(len(sizes), 64)} dimension{'' if len(sizes) == 1 else 's'}"


_SHOWN_COUNT = 10**10


def count_for_hidden(count: Any) -> str:
    """How a hidden check shows a count the notebook's values decide (a
    model's parameters, summed from the shapes the kernel sent): in full up
    to 10,000,000,000 (a course's largest model has some 140 million), else
    only that it is more. A count is any integer the kernel likes: 4,300
    digits (Python's longest printable integer) would carry some 1,780 bytes
    of the student's choosing, a hidden probe's code whole."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        return "an unreadable number"
    return f"{count:,}" if count <= _SHOWN_COUNT else f"over {_SHOWN_COUNT:,}"


class AutograderError(Exception):
    """Base of every error the grader raises on purpose."""

    exit_code = 1


class UsageError(AutograderError, ValueError):
    """The command was called wrongly (missing option, unknown path)."""

    exit_code = 2


class UnknownAssignmentError(UsageError, LookupError):
    """No assignment of that name, or none could be recognised."""


class NotANotebookError(AutograderError, ValueError):
    """The input is not a Jupyter notebook the grader can read."""

    exit_code = 2

    def __init__(self, path: object, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: not a notebook: {reason}")


class ConfigError(AutograderError, ValueError):
    """An assignment's configuration is invalid."""

    exit_code = 2


class ReportWriteError(AutograderError, OSError):
    """A report could not be written where it was asked for (a GitHub job summary)."""


class AssetError(AutograderError, FileNotFoundError):
    """Weights or datasets the grader needs are missing, or cannot be made."""

    exit_code = 3


class BridgeError(AutograderError, RuntimeError):
    """Reading a value from, or calling into, the student's kernel failed."""

    def __init__(self, message: str, *, without_kernel_text: str | None = None) -> None:
        super().__init__(message)
        self.without_kernel_text = message if without_kernel_text is None else without_kernel_text


class StudentNameError(BridgeError, NameError):
    """The student's notebook does not define a name a check needs."""

    def __init__(self, name: str, *, asked: bool = True) -> None:
        """`asked`: the check asked for `name` itself; otherwise the kernel named it
        (a probe's code met it), and a hidden check does not repeat it."""
        self.name = name
        self.asked = asked
        hidden = None if asked else "a name this check needs is not defined in the notebook"
        super().__init__(f"`{name}` is not defined in the notebook", without_kernel_text=hidden)


class StudentCodeError(BridgeError):
    """The student's code raised while a check was calling it."""

    def __init__(self, target: str, exception: str, message: str) -> None:
        """`target` is the grader's words (the function the check called); the
        exception's name and message are the kernel's."""
        self.exception = exception
        self.message = message
        text = f"{target} raised {exception}"
        hidden = (
            f"{target} raised {exception_for_hidden(exception)} "
            "(a hidden check shows no message of the notebook's code: run the cell yourself to see it)"
        )
        super().__init__(f"{text}: {message}" if message else text, without_kernel_text=hidden)


class BridgeTimeoutError(BridgeError, TimeoutError):
    """The kernel did not answer a check within its time limit."""


class KernelUnavailableError(BridgeError, ConnectionError):
    """The kernel is gone, so nothing more can be read from it."""


class UnsafeValueError(BridgeError, ValueError):
    """A value from the kernel is too large or is not plain data."""
