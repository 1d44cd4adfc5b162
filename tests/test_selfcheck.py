"""The self-check inside a notebook (autograder/selfcheck.py) says what
`autograder check --json` says.

Every reference and template, and the first wrong variant of each
assignment, gets a first cell importing the self-check and a last cell
running it; each is executed once, off root in the grading view (so the
/kaggle paths and /assets are there, as on Kaggle), by the same grading that
`autograder check` does: the last cell's printed verdicts are the in-notebook
self-check's, the result's are `check --json`'s. The other variants go
through the check-author seam (tests/test_selfcheck_seam.py).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import pytest

from autograder.course import Course
from tests import other_user
from tests.conftest import ROOT
from tests.harness import AssignmentTests, variant_notebook
from tests.other_user import OtherUser

if sys.platform != "linux":
    pytest.skip("the grading view off root needs Linux's user namespaces", allow_module_level=True)

student, user_namespaces = other_user.student, other_user.user_namespaces  # the fixtures, for this module

# Each assignment's harness: its first variant is checked in-notebook here.
HARNESSES = {
    "01_neural_basics": "tests.test_neural_basics",
    "02_tensors": "tests.test_tensors_variants",
    "03_first_network": "tests.test_first_network",
    "04_cnn_inference": "tests.test_cnn_inference",
    "05_transfer_learning": "tests.test_transfer_learning",
    "06_digits": "tests.test_digits",
    "project_04": "tests.test_project_04",
    "warmup_04": "tests.test_warmup_04",
}
FIRST_CELL = "from autograder import selfcheck"
LAST_CELL = "import json\nprint('SELFCHECK ' + json.dumps(selfcheck.run({name!r}).summary()))"

SELF_CHECKED = """
import json, sys
from pathlib import Path
from autograder.course import Course
from autograder.grading import GradingOptions, grade_submission
from autograder.intake import read_submission
from autograder.scoring import self_check_summary
course = Course(Path(sys.argv[1]))
shown = []
for name, path in json.loads(sys.argv[2]):
    submission = read_submission(Path(path))
    result = grade_submission(submission, course.get(name), options=GradingOptions(public_only=True))
    outputs = submission.notebook.cells[-1].get("outputs", [])
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    said = [line[len("SELFCHECK "):] for line in printed.splitlines() if line.startswith("SELFCHECK ")]
    errors = [o.get("evalue", "") for o in outputs if o.get("output_type") == "error"]
    shown.append({"path": path, "isolation": result.isolation, "check": self_check_summary(result),
                  "selfcheck": json.loads(said[0]) if said else None, "errors": errors})
print(json.dumps(shown))
"""


def first_variant(name: str) -> Any:
    harness = importlib.import_module(HARNESSES[name])
    classes = [c for c in vars(harness).values() if isinstance(c, type) and issubclass(c, AssignmentTests)]
    owned = [c for c in classes if getattr(c, "assignment", None) == name and c.variants]
    return owned[0].variants[0]


def with_selfcheck(source: Path, target: Path, name: str) -> Path:
    notebook = nbformat.read(source, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(FIRST_CELL))
    notebook.cells.append(nbformat.v4.new_code_cell(LAST_CELL.format(name=name)))
    nbformat.write(notebook, target)
    return target


@pytest.fixture(scope="module")
def checked(student: OtherUser, user_namespaces: None, course: Course) -> Mapping[str, dict[str, Any]]:
    """(assignment/kind) -> what the self-check cell printed and what grading said, each notebook run once."""
    folder = student.home / "notebooks"
    folder.mkdir()
    jobs = []
    for name in HARNESSES:
        assignment = course.get(name)
        variant = first_variant(name)
        edited = variant_notebook(assignment, folder / f"variant-{name}.ipynb", variant.edits)
        for kind, source in (
            ("reference", assignment.solution),
            ("template", assignment.template),
            ("variant", edited),
        ):
            jobs.append((f"{name}/{kind}", name, with_selfcheck(source, folder / f"{kind}-{name}.ipynb", name)))
    for path in [folder, *folder.iterdir()]:
        os.chown(path, student.uid, student.gid)
    halves = [jobs[0::2], jobs[1::2]]  # two graders at once, one per core

    def run(half: list[tuple[str, str, Path]]) -> list[dict[str, Any]]:
        listed = json.dumps([(name, str(path)) for _, name, path in half])
        done = student.python(SELF_CHECKED, str(ROOT), listed, timeout=1500)
        assert done.returncode == 0, done.stderr[-3000:]
        shown: list[dict[str, Any]] = json.loads(done.stdout)
        return shown

    with ThreadPoolExecutor(max_workers=2) as pool:
        shown = list(pool.map(run, halves))
    return {
        key: entry
        for half, said in zip(halves, shown, strict=True)
        for (key, _, _), entry in zip(half, said, strict=True)
    }


KEYS = [f"{name}/{kind}" for name in HARNESSES for kind in ("reference", "template", "variant")]


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_the_in_notebook_self_check_says_what_autograder_check_says(
    key: str, checked: Mapping[str, dict[str, Any]]
) -> None:
    entry = checked[key]
    assert entry["isolation"].startswith("user-namespace"), entry["isolation"]
    assert entry["check"]["status"] == "graded", entry["check"]["reason"]
    assert entry["selfcheck"] is not None, f"the self-check cell printed no verdicts: {entry['errors']}"
    assert entry["selfcheck"]["questions"] == entry["check"]["questions"]


@pytest.mark.slow
def test_the_checks_tell_a_right_notebook_from_a_wrong_one(checked: Mapping[str, dict[str, Any]]) -> None:
    """Not a check that cannot fail: every reference passes, every template and variant fails somewhere."""
    for name in HARNESSES:
        verdicts = {
            kind: {q["verdict"] for q in checked[f"{name}/{kind}"]["selfcheck"]["questions"]}
            for kind in ("reference", "template", "variant")
        }
        assert verdicts["reference"] == {"passed"}, (name, verdicts)
        assert "failed" in verdicts["template"], (name, verdicts)


@pytest.mark.slow
def test_a_notebook_that_self_checks_is_graded_as_it_is(course: Course, tmp_path: Path) -> None:
    """The README's two cells cost a graded notebook nothing: no cell error where
    the sandbox shows no grader to import, no checks run inside the kernel."""
    from autograder.execution import GRADED
    from autograder.grading import grade_submission
    from autograder.intake import read_submission

    assignment = course.get("02_tensors")
    path = with_selfcheck(assignment.solution, tmp_path / "02_tensors.ipynb", "02_tensors")
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[-1].source = "selfcheck.check()"
    nbformat.write(notebook, path)
    submission = read_submission(path)
    result = grade_submission(submission, assignment)
    assert result.status == "graded" and result.score == result.max_score, result.reason
    assert result.execution is not None and not result.execution.cell_errors, result.execution.cell_errors
    printed = "".join(o.get("text", "") for o in submission.notebook.cells[-1].outputs)
    assert printed.strip() == f"selfcheck: {GRADED}"
