"""What a check may use, in one module, and a runner to test check files with.

A check is a pytest test in an assignment's `public_checks/` or the
solutions' `hidden_checks/`, marked with its question and points, taking the
fixtures grading provides (README: Writing checks):

- `student` (`StudentAPI`): `fetch(name)`, `call(name, *args)`,
  `probe(code, **inputs)`, `figures(path)`; values come back as data
  (tensors, arrays, `ModuleSnapshot`, `Opaque`), errors as `BridgeError`s;
- `credit` (`Credit`): part of the points, `credit.give(0.5, "why")`;
- `thresholds` (`Thresholds`): the assignment's, for the kind of assets;
- `workdir`, `assets`, `data`, `submission_state`, `fresh_seed`;

and the trusted helpers in `reference` (the course's models, categories,
pictures, figure records).

`run_check_files` runs check files against a plain namespace in this process
(`NamespaceStudent`), as httpx's MockTransport stands in for a server and
click's CliRunner for a terminal: the seam for testing a check without a
kernel. Each value still crosses the grading codec, so the verdict is the one
grading gives for a notebook that bound the same names::

    outcomes = run_check_files([Path("public_checks/test_public.py")], {"x": torch.ones(3)})
    assert [o.status for o in outcomes] == ["passed"]
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from autograder import reference
from autograder.assets import AssetStore
from autograder.checks import CheckContext, CheckFile, Credit, Thresholds, run_checks
from autograder.course import Course
from autograder.errors import (
    BridgeError,
    BridgeTimeoutError,
    KernelUnavailableError,
    StudentCodeError,
    StudentNameError,
    UnsafeValueError,
)
from autograder.figures import FigureRecord, Figures
from autograder.in_process import NamespaceStudent
from autograder.results import CheckOutcome, Visibility
from autograder.student_api import ModuleSnapshot, Opaque, StudentAPI

__all__ = [
    "BridgeError",
    "BridgeTimeoutError",
    "CheckOutcome",
    "Credit",
    "FigureRecord",
    "Figures",
    "KernelUnavailableError",
    "ModuleSnapshot",
    "NamespaceStudent",
    "Opaque",
    "StudentAPI",
    "StudentCodeError",
    "StudentNameError",
    "Thresholds",
    "UnsafeValueError",
    "reference",
    "run_check_files",
]


def run_check_files(
    files: Sequence[Path],
    namespace: MutableMapping[str, Any],
    *,
    visibility: Visibility = "public",
    workdir: Path | None = None,
    assets: AssetStore | None = None,
    thresholds: Mapping[str, float] | None = None,
    cell_sources: Sequence[str] = (),
    course: Course | None = None,
    timeout_s: float = 30.0,
) -> list[CheckOutcome]:
    """Run the check files against `namespace` (the names a notebook would bind)
    and return one outcome per check, as grading records them. `workdir` is the
    folder the notebook wrote to; `assets` and `thresholds` those grading would
    use (`course`'s registered assets, by default the installed course's);
    `cell_sources` the notebook's cells, for checks that read them."""
    student = NamespaceStudent(namespace, timeout_s=timeout_s, workdir=workdir)
    context = CheckContext(
        workdir=workdir,
        assets=assets,
        thresholds=dict(thresholds or {}),
        cell_sources=tuple(cell_sources),
        datasets=(course or Course.default()).datasets() if assets is not None else {},
    )
    return run_checks([CheckFile(Path(path), visibility) for path in files], student, context=context)
