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
from autograder.isolation import Workspace, open_workspace
from autograder.results import ExecutionRecord

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def run(tmp_path: Path, *sources: str, **settings: float) -> Iterator[tuple[ExecutionRecord, Student, Workspace]]:
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


# ---- what the kernel sends is bounded and never fatal; one kernel runs every cell below

_SEND_RAW = (  # the student's code holds the signing key, so it can send any frames it likes
    "import json\nk = get_ipython().kernel\ns = k.session\n"
    "def send_raw(kind, content_bytes, header=None):\n"
    "    header = header or s.msg_header(kind)\n"
    "    parent = json.dumps(get_ipython().parent_header, default=str).encode()\n"
    "    parts = [json.dumps(header, default=str).encode(), parent, b'{}', content_bytes]\n"
    "    k.iopub_socket.send_multipart([kind.encode(), b'<IDS|MSG>', s.sign(parts), *parts])\n"
    "def send(kind, content):\n"
    "    s.send(k.iopub_socket, kind, content, parent=get_ipython().parent_header)\n"
)
MALFORMED = {
    "widget-comm-empty-state": "import comm\ncomm.create_comm(target_name='jupyter.widget', data={'state': {}})",
    "widget-comm-no-state": "import comm\ncomm.create_comm(target_name='jupyter.widget', data={})",
    "output-widget-comm": (
        "import comm\ncomm.create_comm(target_name='jupyter.widget', data={'state': "
        "{'_model_module': '@jupyter-widgets/output', '_model_name': 'OutputModel', 'outputs': 5}})"
    ),
    "unhashable-display-id": "get_ipython().display_pub.publish({'text/plain': 'x'}, transient={'display_id': ['a']})",
    "unhashable-display-id-update": (
        "get_ipython().display_pub.publish({'text/plain': 'x'}, transient={'display_id': {'a': 1}}, update=True)"
    ),
    "stream-text-not-a-string": "send('stream', {'name': 'stdout', 'text': 5})",
    "display-data-not-a-mapping": "send('display_data', {'data': [1, 2], 'metadata': {}})",
    "error-traceback-not-a-list": "send('error', {'ename': 'E', 'evalue': 'v', 'traceback': 7})",
    "content-not-an-object": "send_raw('stream', b'[1, 2, 3]')",
    "content-not-json": "send_raw('stream', b'{not json')",
    "header-without-id": "send_raw('stream', b'{}', header={'msg_type': 'stream'})",
    "container-bomb": "send_raw('stream', b'[' + b'[],' * 1_000_000 + b'[]]')",
    "replayed-message": (
        "parts = s.serialize(s.msg('stream', {'name': 'stdout', 'text': 'once'}, parent=get_ipython().parent_header))\n"
        "k.iopub_socket.send_multipart([b'stream', *parts])\nk.iopub_socket.send_multipart([b'stream', *parts])"
    ),
}
BIG_PRINTS = {"print-20-mb": 20_000_000, "print-100-mb": 100_000_000}  # under and over the message limit


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(scope="module")
def hostile_run() -> Iterator[tuple[ExecutionRecord, Student, list[nbformat.NotebookNode], int]]:
    """One notebook: a cell per malformed message, then the big prints, then a
    cell binding `after`; yields the report, the bridge, the cells, and how much
    the grader's resident memory grew while it ran (nothing read yet)."""
    cells = [_SEND_RAW, *MALFORMED.values(), *(f"print('x' * {n})" for n in BIG_PRINTS.values()), "after = 1"]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    config = AssignmentConfig(cell_timeout_s=120)
    with open_workspace(config) as workspace:
        before = _rss_bytes()
        with executed_notebook(notebook, workspace=workspace, config=config) as (report, student):
            yield report, student, notebook.cells, _rss_bytes() - before


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_message_is_harmless(
    hostile_run: tuple[ExecutionRecord, Student, list[nbformat.NotebookNode], int], kind: str
) -> None:
    report, student, cells, _ = hostile_run
    index = 1 + list(MALFORMED).index(kind)
    assert report.status == "completed" and report.cells_run == len(cells)
    forged = ("E", "v") if kind == "error-traceback-not-a-list" else None  # a forged error is the cell's to own
    errors = [(e.exception, e.message) for e in report.cell_errors if e.cell_index == index]
    assert errors == ([forged] if forged else []), "the cell itself ran cleanly"
    assert student.fetch("after") == 1, "the notebook ran on, and the kernel still answers"


@pytest.mark.parametrize("kind", ["content-not-an-object", "content-not-json", "header-without-id", "replayed-message"])
def test_an_unreadable_message_is_recorded_in_its_cell(
    hostile_run: tuple[ExecutionRecord, Student, list[nbformat.NotebookNode], int], kind: str
) -> None:
    _, _, cells, _ = hostile_run
    texts = [str(o.get("text", "")) for o in cells[1 + list(MALFORMED).index(kind)].outputs]
    assert any("was dropped" in text for text in texts), texts  # its parent is readable: noted where it happened
    if kind == "replayed-message":
        assert texts.count("once") == 1 and any("Duplicate Signature" in text for text in texts), texts


@pytest.mark.parametrize("kind", list(BIG_PRINTS))
def test_output_is_capped_including_the_first_message(
    hostile_run: tuple[ExecutionRecord, Student, list[nbformat.NotebookNode], int], kind: str
) -> None:
    _, _, cells, grown = hostile_run
    outputs = cells[1 + len(MALFORMED) + list(BIG_PRINTS).index(kind)].outputs
    kept = sum(len(str(o.get("text", ""))) for o in outputs)
    assert kept <= 1_000_000 + 1000, "one message bigger than the cap is cut to it"
    # Neither the kept outputs nor a subscriber that nobody reads holds the 120 MB printed.
    assert grown < 100_000_000, f"the grader grew by {grown} bytes while the notebook printed 120 MB"
