"""Autograder for deep-learning notebook assignments.

Public names: `grade_notebook` (grade one notebook), `Course` (where the
assignments are), `SubmissionResult` (what grading returns), and the error base
`AutograderError`. Everything else is internal.
"""

from autograder.course import Course
from autograder.errors import AutograderError
from autograder.grading import GradingOptions, grade_notebook
from autograder.results import SubmissionResult

__all__ = ["AutograderError", "Course", "GradingOptions", "SubmissionResult", "grade_notebook"]
