"""Execution on a real kernel: errors, timeouts, deaths and seeding are recorded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import torch

from autograder.bridge import Student
from autograder.config import AssignmentConfig
from autograder.errors import KernelUnavailableError, StudentCodeError, StudentNameError
from autograder.execution import executed_notebook
from autograder.results import ExecutionReport
from autograder.sandbox import Workspace, open_workspace

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def run(tmp_path: Path, *sources: str, **settings: float) -> Iterator[tuple[ExecutionReport, Student, Workspace]]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    config = AssignmentConfig(**settings)  # type: ignore[arg-type]
    with open_workspace(config) as workspace, executed_notebook(notebook, workspace=workspace, config=config) as run:
        yield (*run, workspace)


def test_errors_are_recorded_and_later_cells_still_run(tmp_path: Path) -> None:
    with run(tmp_path, "a = 1", "1 / 0", "import sys\nsys.exit(3)", "b = a + 1") as (report, student, _workspace):
        assert report.status == "completed" and report.cells_run == 4
        assert [(e.cell_index, e.exception) for e in report.cell_errors] == [
            (1, "ZeroDivisionError"),
            (2, "SystemExit"),
        ]
        assert student.fetch("b") == 2


def test_kernel_death_is_recorded_and_checks_cannot_pass(tmp_path: Path) -> None:
    with run(tmp_path, "a = 1", "import os\nos._exit(1)", "b = 2") as (report, student, _workspace):
        assert report.status == "kernel-died"
        assert report.cell_errors[-1].kind == "kernel-died" and report.cell_errors[-1].cell_index == 1
        with pytest.raises(KernelUnavailableError, match="died in cell 1"):
            student.fetch("a")


def test_a_loop_that_swallows_interrupts_is_stopped(tmp_path: Path) -> None:
    stubborn = (
        "import time\nwhile True:\n    try:\n        time.sleep(0.2)\n    except KeyboardInterrupt:\n        pass"
    )
    with run(tmp_path, "a = 1", stubborn, "b = 2", cell_timeout_s=2) as (report, student, _workspace):
        assert report.status == "kernel-died"
        assert [e.kind for e in report.cell_errors] == ["timeout", "kernel-died"]
        with pytest.raises(KernelUnavailableError):
            student.fetch("a")


def test_notebook_budget_stops_the_run(tmp_path: Path) -> None:
    cells = ("import time\ntime.sleep(2.5)", "time.sleep(2.5)", "c = 3")
    with run(tmp_path, *cells, notebook_timeout_s=3) as (report, student, _workspace):
        assert report.status == "timed-out"
        assert report.cell_errors[-1].kind == "not-run"
        with pytest.raises(StudentNameError):
            student.fetch("c")


def test_kernel_is_seeded_before_the_first_cell(tmp_path: Path) -> None:
    source = "import torch, random\nt = torch.rand(3)\nr = random.random()"
    with run(tmp_path, source, seed=7) as (_, student, _workspace):
        torch.manual_seed(7)
        assert torch.equal(student.fetch("t"), torch.rand(3))


def test_runs_in_the_working_folder(tmp_path: Path) -> None:
    with run(tmp_path, "import os\nhere = os.getcwd()\nopen('made.txt', 'w').write('x')") as (_, student, _workspace):
        workdir = _workspace.workdir
        assert Path(student.fetch("here")) == workdir
        assert (workdir / "made.txt").read_text() == "x"


def test_bridge_call_errors_and_timeouts(tmp_path: Path) -> None:
    code = (
        "def boom(x):\n    raise ValueError('bad input ' + str(x))\n\ndef slow():\n    import time\n    time.sleep(30)"
    )
    with run(tmp_path, code, bridge_timeout_s=1) as (_, student, _workspace):
        with pytest.raises(StudentCodeError, match="ValueError: bad input 3"):
            student.call("boom", 3)
        with pytest.raises(TimeoutError):
            student.call("slow")
        assert student.fetch("__name__") == "__main__", "the kernel answers again after an interrupted call"
