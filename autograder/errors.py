"""Every error the grader raises on purpose.

The tree, with the CLI exit code each one maps to::

    AutograderError (Exception)                       exit 1
    +-- UsageError (ValueError)                       exit 2
    |   +-- UnknownAssignmentError (LookupError)      exit 2
    +-- NotANotebookError (ValueError)                exit 2
    +-- ConfigError (ValueError)                      exit 2
    +-- AssetError (FileNotFoundError)                exit 3
    +-- BridgeError (RuntimeError)                    exit 1
        +-- StudentNameError (NameError)              a name the check asked for is missing
        +-- StudentCodeError (RuntimeError)           student code raised while a check called it
        +-- BridgeTimeoutError (TimeoutError)         the kernel did not answer in time
        +-- KernelUnavailableError (ConnectionError)  the kernel died or was stopped
        +-- UnsafeValueError (ValueError)             a value too large or not decodable as data

Bridge errors are raised inside checks; the check runner turns them into a
failed check with the error's message, so the student reads why.
"""

from __future__ import annotations


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


class AssetError(AutograderError, FileNotFoundError):
    """Weights or datasets the grader needs are missing, or cannot be made."""

    exit_code = 3


class BridgeError(AutograderError, RuntimeError):
    """Reading a value from, or calling into, the student's kernel failed."""


class StudentNameError(BridgeError, NameError):
    """The student's notebook does not define a name a check needs."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"`{name}` is not defined in the notebook")


class StudentCodeError(BridgeError):
    """The student's code raised while a check was calling it."""

    def __init__(self, target: str, exception: str, message: str) -> None:
        self.exception = exception
        self.message = message
        text = f"{target} raised {exception}"
        super().__init__(f"{text}: {message}" if message else text)


class BridgeTimeoutError(BridgeError, TimeoutError):
    """The kernel did not answer a check within its time limit."""


class KernelUnavailableError(BridgeError, ConnectionError):
    """The kernel is gone, so nothing more can be read from it."""


class UnsafeValueError(BridgeError, ValueError):
    """A value from the kernel is too large or is not plain data."""
