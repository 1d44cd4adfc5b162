"""Sandboxed execution: run a clean notebook on a fresh kernel, cell by cell,
and keep the kernel alive so the checks can question it afterwards.

The kernel is the grader's own (this Python environment), started under a
kernel name the grader chooses, never the notebook's kernelspec. It talks over
IPC sockets, which keep working when the kernel has no network.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from autograder.bridge import Student
from autograder.config import AssignmentConfig
from autograder.results import CellError, ExecutionReport
from autograder.sandbox import KernelLaunch, Workspace

KERNEL_NAME = "autograder-python"
_OUTPUT_LIMIT = 1_000_000  # bytes of output kept per cell; the rest is dropped
_CUT = "\n[output past the grader's limit was dropped]\n"


class _GraderKernelSpecs(KernelSpecManager):
    """Offers exactly one kernel: the one the grader builds."""

    def __init__(self, launch: KernelLaunch, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._launch = launch

    def find_kernel_specs(self) -> dict[str, str]:
        return {KERNEL_NAME: ""}

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=list(self._launch.argv), display_name="Autograder Python", language="python", env={})


class _CappedNotebookClient(NotebookClient):
    """nbclient offers no hook on each output, so this one method is overridden:
    output past the cap is dropped as it arrives, not stored and cut later."""

    output_limit = _OUTPUT_LIMIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._output_bytes: dict[int, int] = {}

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        used = self._output_bytes.get(cell_index, 0)
        self._output_bytes[cell_index] = used + len(json.dumps(msg.get("content", {})))
        if used >= self.output_limit:
            if not outs or outs[-1].get("text") != _CUT:
                outs.append(nbformat.v4.new_output("stream", name="stderr", text=_CUT))  # type: ignore[no-untyped-call]
            return None
        return super().output(outs, msg, display_id, cell_index)


def seed_code(seed: int) -> str:
    return (
        f"import random as _r; _r.seed({seed}); del _r\n"
        f"try:\n    import numpy as _n; _n.random.seed({seed}); del _n\nexcept ImportError:\n    pass\n"
        f"try:\n    import torch as _t; _t.manual_seed({seed}); del _t\nexcept ImportError:\n    pass\n"
    )


@contextmanager
def executed_notebook(
    notebook: NotebookNode,
    *,
    workspace: Workspace,
    config: AssignmentConfig,
) -> Iterator[tuple[ExecutionReport, Student]]:
    """Run every code cell of `notebook` in the workspace; yield how it went and a
    `Student` bridge to the still-running kernel, which is stopped on exit."""
    launch = workspace.launch
    manager = AsyncKernelManager(
        kernel_spec_manager=_GraderKernelSpecs(launch),
        kernel_name=KERNEL_NAME,
        transport="ipc",
        ip=str(workspace.runtime / "kernel"),
        connection_file=str(workspace.runtime / "connection.json"),
    )
    client = _CappedNotebookClient(
        notebook,
        km=manager,
        allow_errors=True,
        interrupt_on_timeout=False,
        startup_timeout=120,
        iopub_timeout=10,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(workspace.workdir)}},
    )
    # The kernel's own stdout and stderr (banners, anything student code writes to
    # fd 1 or 2 directly) are not the grader's to print.
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "stdin": subprocess.DEVNULL}
    with client.setup_kernel(cleanup_kc=True, env=launch.env, cwd=str(workspace.workdir), **quiet):
        student = Student(
            manager.get_connection_info(),
            timeout_s=config.bridge_timeout_s,
            max_bytes=int(config.max_value_mb * 1024 * 1024),
            interrupt=run_sync(manager.interrupt_kernel),
            kill=lambda: run_sync(manager.shutdown_kernel)(now=True),
        )
        try:
            student.run_internal(seed_code(config.seed), timeout_s=120)
            report = _run_cells(client, notebook, config, student, launch.sandbox)
            if report.status == "kernel-died":
                student.unavailable = _death_reason(report)
            yield report, student
        finally:
            student.close()


def _run_cells(
    client: NotebookClient,
    notebook: NotebookNode,
    config: AssignmentConfig,
    student: Student,
    sandbox: str,
) -> ExecutionReport:
    started = time.monotonic()
    code_cells = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    errors: list[CellError] = []
    status: Any = "completed"
    cells_run = 0
    for position, index in enumerate(code_cells):
        remaining = config.notebook_timeout_s - (time.monotonic() - started)
        if remaining <= 0:
            status = "timed-out"
            errors.append(_not_run(code_cells[position:], config.notebook_timeout_s))
            break
        client.timeout = max(1, math.ceil(min(config.cell_timeout_s, remaining)))
        cell = notebook.cells[index]
        try:
            client.execute_cell(cell, index)
        except CellTimeoutError:
            cells_run += 1
            errors.append(
                CellError(index, "timeout", "CellTimeoutError", f"ran past {client.timeout} s and was interrupted")
            )
            if not student.interrupt_and_wait():
                status = "kernel-died"
                errors.append(
                    CellError(
                        index,
                        "kernel-died",
                        "KernelStuck",
                        "the kernel ignored the interrupt and was stopped",
                    )
                )
                break
            continue
        except DeadKernelError:
            cells_run += 1
            status = "kernel-died"
            errors.append(
                CellError(
                    index,
                    "kernel-died",
                    "DeadKernelError",
                    "the kernel died while this cell ran (out of memory, os._exit, a crash)",
                )
            )
            break
        cells_run += 1
        errors.extend(_cell_errors(cell, index))
    return ExecutionReport(
        status=status,
        code_cells=len(code_cells),
        cells_run=cells_run,
        cell_errors=tuple(errors),
        seconds=round(time.monotonic() - started, 3),
        sandbox=sandbox,
    )


def _not_run(indices: list[int], budget: float) -> CellError:
    first = indices[0]
    return CellError(
        first,
        "not-run",
        "NotebookTimeout",
        f"the notebook's {budget:g} s budget ran out; {len(indices)} code cell(s) from here on did not run",
    )


def _cell_errors(cell: NotebookNode, index: int) -> list[CellError]:
    return [
        CellError(index, "error", str(output.get("ename", "Error"))[:200], str(output.get("evalue", ""))[:1000])
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


def _death_reason(report: ExecutionReport) -> str:
    death = next(e for e in report.cell_errors if e.kind == "kernel-died")
    return f"the kernel died in cell {death.cell_index}: {death.message}"
