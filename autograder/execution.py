"""Sandboxed execution: run a clean notebook on a fresh kernel, cell by cell,
and keep the kernel alive so the checks can question it afterwards.

The kernel is the grader's own (this Python environment), started under a
kernel name the grader chooses, never the notebook's kernelspec. It talks over
IPC sockets, which keep working when the kernel has no network.

Every message the kernel sends may be forged by the student's code, so what
the grader keeps of them is bounded and nothing in them is fatal: a message
part over `_MESSAGE_LIMIT` drops the connection before it is read, output
is cut to what is left of a cell's cap before it is kept (the first message
too), widgets and display ids are not followed (the grader is no front end),
and a message that cannot be read is recorded in the cell's output.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from autograder import figure_records, wire
from autograder.assets import default_store
from autograder.bridge import DROPPED, KernelSession, Student, limit_messages
from autograder.config import AssignmentConfig
from autograder.isolation import KernelLaunch, Workspace
from autograder.results import CellError, ExecutionRecord

KERNEL_NAME = "autograder-python"
_OUTPUT_LIMIT = 1_000_000  # characters of output kept per cell; the rest is dropped
_OUTPUT_COST = 256  # what each kept output counts against the cap besides its text (a million tiny prints)
_ERRORS_KEPT = 5  # error outputs per cell whose name and message are kept even past the cap
_MESSAGE_LIMIT = 64 << 20  # largest message part read from the kernel while cells run
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


class _GraderKernelManager(AsyncKernelManager):
    """Its clients read at most `_MESSAGE_LIMIT` bytes per message part; zmq
    takes the limit from the context when a socket connects, which happens
    inside nbclient, so it is set here, as the client is made."""

    def client(self, **kwargs: Any) -> Any:
        client = super().client(**kwargs)
        limit_messages(client.context, _MESSAGE_LIMIT)
        return client


class _CappedNotebookClient(NotebookClient):
    """nbclient offers no hook on each output, so two methods are overridden:
    every message is checked before nbclient's own handling, and output past
    the cap is cut as it arrives, not stored and cut later."""

    output_limit = _OUTPUT_LIMIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._output_used: dict[int, int] = {}
        self._errors_kept: dict[int, int] = {}
        self._cut_cells: set[int] = set()

    def process_message(self, msg: dict[str, Any], cell: NotebookNode, cell_index: int) -> NotebookNode | None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == DROPPED:
            self._note(cell.outputs, cell_index, f"[a message from the kernel was dropped: {content['reason']}]")
            return None
        if kind == "status":
            if content.get("execution_state") == "idle":
                raise CellExecutionComplete()
            return None
        if kind.startswith("comm") or kind == "update_display_data":
            return None  # widgets and display updates: the grader is no front end, and keeps no display ids
        try:
            return super().process_message({**msg, "content": _without_display_id(content)}, cell, cell_index)
        except CellExecutionComplete:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            self._note(
                cell.outputs, cell_index, f"[a malformed {kind[:40]} message was dropped: {type(error).__name__}]"
            )
            return None

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        room = self.output_limit - self._output_used.get(cell_index, 0)
        kept = self._fit(msg, room, cell_index)
        if kept is None:
            self._mark_cut(outs, cell_index)
            return None
        fitted, used, cut = kept
        self._output_used[cell_index] = self._output_used.get(cell_index, 0) + used + _OUTPUT_COST
        out = super().output(outs, fitted, None, cell_index)
        if cut:
            self._mark_cut(outs, cell_index)
        return out

    def _fit(self, msg: dict[str, Any], room: int, cell_index: int) -> tuple[dict[str, Any], int, bool] | None:
        """The message with its text cut to `room` characters, what it uses, and
        whether anything was cut; None when nothing of it is kept. An error keeps
        its name and message past the cap (the grader reads them), a few times."""
        kind, content = msg["msg_type"], msg["content"]
        if kind == "error":
            if self._errors_kept.get(cell_index, 0) >= _ERRORS_KEPT:
                return None
            self._errors_kept[cell_index] = self._errors_kept.get(cell_index, 0) + 1
            lines, cut = _cut_lines(content.get("traceback"), max(room, 0))
            fitted = {
                "ename": str(content.get("ename", "Error"))[:200],
                "evalue": str(content.get("evalue", ""))[:1000],
                "traceback": lines,
            }
            return {**msg, "content": fitted}, sum(map(len, lines)), cut
        if room <= 0:
            return None
        if kind == "stream":
            text = content["text"]
            if type(text) is not str:
                raise TypeError("stream text is not a string")
            return {**msg, "content": {**content, "text": text[:room]}}, min(len(text), room), len(text) > room
        if kind in ("display_data", "execute_result"):
            data = content.get("data")
            if type(data) is not dict:
                raise TypeError("display data is not a mapping")
            kept: dict[str, Any] = {}
            for mime, value in data.items():
                size = _bounded_size(value, room)
                if size <= room:
                    kept[mime] = value
                    room -= size
            cut = len(kept) < len(data)
            shown = {**content, "data": kept, "metadata": {}}
            return {**msg, "content": shown}, sum(_bounded_size(v, self.output_limit) for v in kept.values()), cut
        return {**msg, "content": {}}, 0, True  # nothing else is output nbclient keeps

    def _mark_cut(self, outs: list[NotebookNode], cell_index: int) -> None:
        if cell_index not in self._cut_cells:
            self._cut_cells.add(cell_index)
            outs.append(nbformat.v4.new_output("stream", name="stderr", text=_CUT))  # type: ignore[no-untyped-call]

    def _note(self, outs: list[NotebookNode], cell_index: int, text: str) -> None:
        """Record, within the cap, that something from the kernel was not kept."""
        used = self._output_used.get(cell_index, 0)
        if used >= self.output_limit:
            self._mark_cut(outs, cell_index)
            return
        self._output_used[cell_index] = used + len(text) + _OUTPUT_COST
        outs.append(nbformat.v4.new_output("stream", name="stderr", text=text + "\n"))  # type: ignore[no-untyped-call]


def _without_display_id(content: dict[str, Any]) -> dict[str, Any]:
    """Content without its display id: an unhashable one broke nbclient, and
    updating earlier outputs by id would grow them past the cap."""
    return {key: value for key, value in content.items() if key != "transient"}


def _cut_lines(lines: Any, room: int) -> tuple[list[str], bool]:
    """Traceback lines, whole, while they fit in `room` characters."""
    if type(lines) is not list:
        return [], bool(lines)
    kept: list[str] = []
    for line in lines:
        text = str(line)
        if len(text) > room:
            return kept, True
        kept.append(text)
        room -= len(text)
    return kept, False


def _bounded_size(value: Any, budget: int) -> int:
    """The characters in a JSON value, counted only up to just past `budget`
    (a 200 MB value is not walked or copied to learn that it is too big)."""
    size, pending = 0, [value]
    while pending and size <= budget:
        item = pending.pop()
        if isinstance(item, str):
            size += len(item)
        elif isinstance(item, dict):
            size += 2 * len(item)
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            size += len(item) + 2
            pending.extend(item)
        else:
            size += 8
    return size


_FIGURE_RECORDER = figure_records.install_code(
    Path(figure_records.__file__).read_text(encoding="utf-8"), wire.FIGURES_MODULE
)


GRADED = "this notebook is being graded: the grader runs the checks itself after the last cell"

# A notebook that self-checks (`from autograder import selfcheck` ... `selfcheck.check()`)
# is graded as it is: where the kernel cannot import the grader (the sandbox shows no
# checkout), this stand-in module says the grader runs the checks; where it can (an installed
# wheel), selfcheck.check() says the same, seeing `wire.GRADING_MODULE` (`grading_marker`).
_SELFCHECK_STAND_IN = f"""
import importlib.util as _u, os as _o, sys as _s, types as _t
_f = _u.find_spec("autograder")
if _f is None or not (_f.origin and _o.path.exists(_f.origin)):
    _p, _m = _t.ModuleType("autograder"), _t.ModuleType("autograder.selfcheck")
    _p.__path__, _p.selfcheck = [], _m
    def _check(*args, **kwargs):
        print("selfcheck: " + {GRADED!r})
    _m.check = _check
    _s.modules.setdefault("autograder", _p)
    _s.modules.setdefault("autograder.selfcheck", _m)
    del _p, _m, _check
del _u, _o, _s, _t, _f
"""


def grading_marker(assets_kind: str) -> str:
    """Kernel code that marks the kernel as being graded (in its memory, never its
    environment, which must hold nothing of the grader's): the asset kind a
    self-check's thresholds follow, and the self-check's stand-in."""
    return (
        "import sys as _s, types as _t\n"
        f"_g = _t.ModuleType({wire.GRADING_MODULE!r})\n"
        f"_g.assets_kind = {assets_kind!r}\n"
        f"_s.modules[{wire.GRADING_MODULE!r}] = _g\n"
        "del _s, _t, _g\n" + _SELFCHECK_STAND_IN
    )


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
) -> Iterator[tuple[ExecutionRecord, Student]]:
    """Run every code cell of `notebook` in the workspace; yield how it went and a
    `Student` bridge to the still-running kernel, which is stopped on exit."""
    launch = workspace.launch
    manager = _GraderKernelManager(
        session=KernelSession(),
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
            workdir=workspace.workdir,
            shown=_shown_folders(workspace),
        )
        _seal_runtime(workspace.runtime)
        try:
            marker = grading_marker(default_store().kind)
            student.run_internal(seed_code(config.seed) + _FIGURE_RECORDER + marker, timeout_s=120)
            record = _run_cells(client, notebook, config, student, launch.sandbox)
            _stop_listening(client)
            if record.status == "kernel-died":
                student.unavailable = _death_reason(record)
            yield record, student
        finally:
            student.close()


def _shown_folders(workspace: Workspace) -> dict[str, Path]:
    """The folders a figure's image files may come from, as the kernel resolves
    them -> here: the public assets and the working folder."""
    public = default_store().public
    seen = workspace.assets if workspace.assets is not None else public.resolve()
    return {str(seen): public, str(workspace.workdir.resolve()): workspace.workdir}


def _seal_runtime(runtime: Path) -> None:
    """Once the kernel has bound its sockets (before any student code runs), its
    runtime folder becomes root's: the grader reconnects to those paths as root,
    so the student must not be able to swap them for links to other sockets
    (the fork server's, the Docker daemon's). Not root: nothing to protect."""
    if os.geteuid() == 0:
        os.chown(runtime, 0, 0)
        runtime.chmod(0o755)


def _run_cells(
    client: NotebookClient,
    notebook: NotebookNode,
    config: AssignmentConfig,
    student: Student,
    sandbox: str,
) -> ExecutionRecord:
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
    return ExecutionRecord(
        status=status,
        code_cells=len(code_cells),
        cells_run=cells_run,
        cell_errors=tuple(errors),
        seconds=round(time.monotonic() - started, 3),
        sandbox=sandbox,
    )


def _stop_listening(client: NotebookClient) -> None:
    """nbclient's channels are not read once the cells have run: stopped, they
    do not keep what the kernel sends during the checks (the bridge's replies,
    output of the student's threads, a forged flood on any channel: an
    unsubscribed socket still receives it) in the grader's memory. The kernel
    is shut down through its manager's own channel."""
    if client.kc is not None:
        client.kc.stop_channels()


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


def _death_reason(record: ExecutionRecord) -> str:
    death = next(e for e in record.cell_errors if e.kind == "kernel-died")
    return f"the kernel died in cell {death.cell_index}: {death.message}"
