"""Run one notebook's code in this process and its public checks through the
check-author seam, then print the verdicts as JSON (for the harness's seam test):

    python -m tests.seam_runner COURSE ASSIGNMENT NOTEBOOK [CELL_TIMEOUT_S]

The notebook's cells run in IPython's own shell here (no kernel, no sandbox:
the course's own reference and variants only), in a fresh working folder given
what grading gives it (the assignment's files, its asset links), with
/kaggle/input/... and /kaggle/working written as this machine's folders; then
`selfcheck.run` checks the shell's namespace, as in a student's kernel.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

os.environ.setdefault("MPLBACKEND", "Agg")

from autograder.assets import AssetStore, default_store
from autograder.course import Assignment, Course
from autograder.execution import seed_code


def provided_folder(assignment: Assignment, store: AssetStore) -> Path:
    """A fresh working folder with what grading gives the notebook."""
    work = Path(tempfile.mkdtemp(prefix="seam-"))
    for relative in assignment.config.files:
        source, target = assignment.public_dir / relative, work / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    for relative, folder in assignment.config.links.items():
        target = work / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(store.public_folder(folder), target_is_directory=True)
    return work


def here(source: str, assignment: Assignment, store: AssetStore, work: Path) -> str:
    """The cell's code with the Kaggle paths written as this machine's folders."""
    inputs = sorted(assignment.config.kaggle_inputs.items(), key=lambda item: -len(item[0]))
    for path, folder in inputs:
        source = source.replace(f"/kaggle/input/{path.strip('/')}", str(store.public / folder))
    return source.replace("/kaggle/working", str(work))


def run_cell(shell: object, source: str, timeout_s: float) -> None:
    """One cell, stopped as a kernel interrupt would stop it past `timeout_s`."""

    def interrupt(_signal: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        shell.run_cell(source, store_history=True)  # type: ignore[attr-defined]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def main(course_root: str, name: str, notebook_path: str, timeout: str = "") -> None:
    import nbformat
    from IPython.core.interactiveshell import InteractiveShell

    course = Course(Path(course_root))
    assignment = course.get(name)
    store = default_store()
    os.environ["TORCH_HOME"] = str(store.torch_home)  # the weights, as grading's kernel finds them
    work = provided_folder(assignment, store)
    os.chdir(work)
    from autograder import selfcheck  # here: its figure recorder reads paths from this folder, and sees every figure

    notebook = nbformat.read(notebook_path, as_version=4)
    shell = InteractiveShell.instance()
    shell.run_cell(seed_code(assignment.config.seed), store_history=False)
    # a variant's own cell limit is its point; else room to spare: the checks, not the time, are compared here
    cell_timeout_s = float(timeout) if timeout else 10 * assignment.config.cell_timeout_s
    for cell in notebook.cells:
        if cell.cell_type == "code":
            run_cell(shell, here(cell.source, assignment, store, work), cell_timeout_s)
    done = selfcheck.run(name, namespace=shell.user_ns, course=course)
    sys.stdout.flush()
    os.write(1, ("\nSEAM " + json.dumps(done.summary()) + "\n").encode())


if __name__ == "__main__":
    main(*sys.argv[1:])
