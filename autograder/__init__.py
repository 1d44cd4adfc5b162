"""Autograder for deep-learning notebook assignments.

Public names: `grade_notebook` (grade one notebook), `Course` (where the
assignments are), `SubmissionResult` (what grading returns), and the error base
`AutograderError`. Everything else is internal.

They are imported when first used, so that importing a part of the package
(the command's entry point, `autograder.selfcheck` in a student's kernel) does
not load the grading pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autograder.course import Course
    from autograder.errors import AutograderError
    from autograder.grading import GradingOptions, grade_notebook
    from autograder.results import SubmissionResult

__all__ = ["AutograderError", "Course", "GradingOptions", "SubmissionResult", "grade_notebook"]
_HOMES = {
    "AutograderError": "autograder.errors",
    "Course": "autograder.course",
    "GradingOptions": "autograder.grading",
    "SubmissionResult": "autograder.results",
    "grade_notebook": "autograder.grading",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'autograder' has no attribute {name!r}")
