"""An assignment's contract, checked by `autograder verify` and the test suite:
the reference scores full marks, the blank template scores zero, the public
checks are a subset of what grading runs, and nothing public leaks a hidden check.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from autograder.course import Assignment, Course
from autograder.grading import GradingOptions, grade_notebook
from autograder.results import SubmissionResult


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str


def verify_assignment(course: Course, name: str) -> list[Finding]:
    """Every clause of the contract with whether it holds; grades three notebooks."""
    assignment = course.get(name)  # loads and validates the config
    findings = [Finding(True, f"config is valid ({len(assignment.config.questions)} questions)")]
    findings += _layout(assignment)
    if not all(f.ok for f in findings):
        return findings
    reference = grade_notebook(assignment.solution, course=course, assignment_name=name)
    template = grade_notebook(assignment.template, course=course, assignment_name=name)
    self_check = grade_notebook(
        assignment.solution, course=course, assignment_name=name, options=GradingOptions(public_only=True)
    )
    findings.append(_full_marks(reference))
    findings.append(
        Finding(
            template.status == "graded" and template.score == 0 and template.max_score > 0,
            f"template scores zero without crashing ({_summary(template)})",
        )
    )
    public = {c.name for c in self_check.checks}
    graded_public = {c.name for c in reference.checks if c.visibility == "public"}
    findings.append(
        Finding(
            bool(public) and public <= graded_public and all(c.status == "passed" for c in self_check.checks),
            f"public checks ({len(public)}) are a subset of grading and pass on the reference",
        )
    )
    return findings


def hidden_check_names(assignment: Assignment) -> set[str]:
    """Names of the hidden check functions, read without importing the files."""
    names = set()
    for path in assignment.hidden_checks:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    return {n for n in names if n.startswith("test_")}


def _layout(assignment: Assignment) -> list[Finding]:
    findings = [
        Finding(assignment.template.is_file(), f"template {assignment.template} exists"),
        Finding(assignment.solution.is_file(), f"reference {assignment.solution} exists"),
        Finding(bool(assignment.public_checks), "public checks exist"),
        Finding(bool(assignment.hidden_checks), "hidden checks exist"),
    ]
    leaks = _public_files_naming(assignment.public_dir, hidden_check_names(assignment))
    findings.append(Finding(not leaks, "no public file names a hidden check" + (f": {leaks}" if leaks else "")))
    return findings


def _public_files_naming(folder: Path, names: set[str]) -> list[str]:
    leaks = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            leaks += [f"{path.name}: {n}" for n in sorted(names) if n in text]
    return leaks


def _full_marks(result: SubmissionResult) -> Finding:
    ok = result.status == "graded" and result.max_score > 0 and result.score == result.max_score
    return Finding(ok, f"reference scores full marks ({_summary(result)})")


def _summary(result: SubmissionResult) -> str:
    if result.status != "graded":
        return f"{result.status}: {result.reason}"
    failing = [f"{c.question}/{c.name}: {c.message}" for c in result.checks if c.status != "passed"]
    text = f"{result.score:g}/{result.max_score:g}"
    return text + (f"; failing {failing[:3]}" if failing and result.score else "")
