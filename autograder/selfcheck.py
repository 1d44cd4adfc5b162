"""The self-check inside a student's notebook, on Kaggle, Colab or their own Jupyter::

    from autograder import selfcheck      # at the top: figures drawn later are recorded
    ...
    selfcheck.check()                     # every public check; or check("warmup_04", "i1")

The public checks run here, in the student's own kernel, against its live
namespace (`in_process.NamespaceStudent`): the student's own code on the
student's own machine, so no sandbox is needed and none is claimed. Values
still cross the grading codec and each call keeps its timeout, so a check
says here what `autograder check` says, and an infinite loop ends the call,
not the cell. Only public checks exist in the installed package; hidden
checks, their names and expected values are the instructor's alone.

Importing this module installs the figure recorder grading installs
(`figure_records`): figures drawn before the import have no record, and the
figure checks say so.

The assets the checks compare against are, in order: `$AUTOGRADER_ASSETS`;
an asset folder made on this machine (`autograder assets synth` or `fetch`);
the grading view's `/assets` (a notebook checked inside it; the kind grading marked the kernel with); on Kaggle, the
course's data set under /kaggle/input and the weights this kernel loaded
(the `real` thresholds). Where none is found, the checks needing them are
`environment`, never the student's failure.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import html
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder import wire
from autograder.assets import AssetStore, default_store
from autograder.checks import CheckContext, CheckFile, run_checks
from autograder.course import Assignment, Course
from autograder.environment import GpuUse, MissingData
from autograder.errors import UnknownAssignmentError
from autograder.in_process import NamespaceStudent
from autograder.results import CheckOutcome
from autograder.safe_text import plain_text
from autograder.scoring import QuestionVerdict, question_verdicts, verdict_rows
from autograder.selection import AssignmentNames

ASSETS_VIEW = Path("/assets")  # where the grading view shows the public assets (isolation.namespaces)
KAGGLE_INPUT = Path("/kaggle/input")
_MARKS = {"passed": "passed", "failed": "FAILED", "environment": "not checkable here"}


def _install_recorder() -> bool:
    """Record figures from now on, with grading's recorder (the one already in
    this kernel when it runs in grading). True when figures may have been drawn
    before it: matplotlib was already imported."""
    if wire.FIGURES_MODULE in sys.modules:
        return False
    from autograder import figure_records

    late = "matplotlib.pyplot" in sys.modules
    sys.modules[wire.FIGURES_MODULE] = figure_records
    figure_records.install()
    return late


_RECORDER_LATE = _install_recorder()


@dataclass(frozen=True)
class SelfCheck:
    """One self-check: the assignment, its verdict per question, and each check's outcome."""

    assignment: str
    questions: tuple[QuestionVerdict, ...]
    outcomes: tuple[CheckOutcome, ...]
    how: str  # how the assignment was told

    def summary(self) -> dict[str, Any]:
        """As `autograder check --json` gives it, less the notebook's path."""
        return {"assignment": self.assignment, "questions": verdict_rows(self.questions)}

    def text(self) -> str:
        lines = [f"Self-check of {self.assignment} ({self.how}): public checks only"]
        for q in self.questions:
            lines.append(f"  {_MARKS[q.verdict]:<18} {plain_text(q.question)} {plain_text(q.title)}")
            lines += [f"      hint: {plain_text(hint)}" for hint in q.hints]
        lines.append(_footer(self.questions))
        return "\n".join(lines)

    def html(self) -> str:
        rows = "".join(
            f"<tr><td>{_marked(q.verdict)}</td><td>{html.escape(q.question)}</td><td>{html.escape(q.title)}</td>"
            f"<td>{'<br>'.join(html.escape(hint) for hint in q.hints)}</td></tr>"
            for q in self.questions
        )
        return (
            f"<p><b>Self-check of {html.escape(self.assignment)}</b> ({html.escape(self.how)}): public checks only</p>"
            "<table><thead><tr><th></th><th>question</th><th></th><th>hint</th></tr></thead>"
            f"<tbody>{rows}</tbody></table><p>{html.escape(_footer(self.questions))}</p>"
        )


def check(assignment: str | None = None, question: str | None = None) -> None:
    """Run the assignment's public checks (one question's with `question`) against
    this kernel, and show a table of the verdicts: HTML in Jupyter, text elsewhere."""
    if wire.GRADING_MODULE in sys.modules:  # `autograder grade` or `check` runs this notebook
        from autograder.execution import GRADED

        print(f"selfcheck: {GRADED}")
        return
    try:
        done = run(assignment, question)
    except (LookupError, ValueError, UnknownAssignmentError) as error:  # what to ask for instead
        print(f"selfcheck: {error}")
        return
    shell = _shell()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import HTML, display

        display(HTML(done.html()))  # type: ignore[no-untyped-call]
    else:
        print(done.text())


def run(
    assignment: str | None = None,
    question: str | None = None,
    *,
    namespace: dict[str, Any] | None = None,
    course: Course | None = None,
) -> SelfCheck:
    """`check`'s work without showing it: the verdicts, for a script or a test.
    `namespace` defaults to this kernel's; `course` to the installed one."""
    course = course or Course.default()
    namespace = namespace if namespace is not None else _user_namespace()
    chosen, how = _assignment(course, namespace, assignment)
    files = [CheckFile(path, "public") for path in chosen.public_checks]
    outcomes = _run_public_checks(chosen, files, namespace)
    if question is not None:
        outcomes = [o for o in outcomes if o.question == question]
        if not outcomes:
            known = ", ".join(chosen.config.questions)
            raise ValueError(f"{chosen.name} has no public check for question {question!r} (its questions: {known})")
    verdicts = question_verdicts(outcomes, chosen.config.questions)
    return SelfCheck(chosen.name, tuple(verdicts), tuple(outcomes), how)


def _run_public_checks(chosen: Assignment, files: list[CheckFile], namespace: dict[str, Any]) -> list[CheckOutcome]:
    if not files:
        return []
    config = chosen.config
    store = find_assets(chosen)
    workdir = notebook_folder()
    shown = {str(workdir.resolve()): workdir, str(store.public.resolve()): store.public}
    student = _NotebookStudent(
        namespace,
        timeout_s=config.bridge_timeout_s,
        max_bytes=int(config.max_value_mb * 1024 * 1024),
        workdir=workdir,
        shown=shown,
    )
    student.late_recorder = _RECORDER_LATE
    cells = _cells(namespace)
    missing = MissingData.of(cells, [path for path in _course_paths(chosen) if not Path(path).exists()])
    data_cells = sorted(missing.cells)
    context = CheckContext(
        workdir=workdir,
        assets=store,
        thresholds=config.thresholds.get(store.kind, {}),
        cell_sources=tuple(source or "" for source in cells),
        environment_cell=data_cells[0] if data_cells else None,
        gpu_use=GpuUse.of(cells),
        missing_data=missing,
        datasets=Course(chosen.public_dir.parent.parent).datasets(),
    )
    failure = f"a cell that uses {', '.join(missing.named)}" if data_cells else None
    with _recording(False):
        return run_checks(files, student, environment_failure=failure, context=context, budget_s=config.checks_budget_s)


class _NotebookStudent(NamespaceStudent):
    """The kernel's namespace, with the figure recorder noting what the notebook's
    code opens while it answers, and not what the checks' own code opens (the
    pictures a check compares against, which grading opens in its own process)."""

    def _exchange(self, request: dict[str, Any], *, seconds: float, by_budget: bool) -> dict[str, Any]:
        with _recording(True):
            return super()._exchange(request, seconds=seconds, by_budget=by_budget)


@contextlib.contextmanager
def _recording(on: bool) -> Iterator[None]:
    """The figure recorder notes opened images (on) or not (off) within the block."""
    state = getattr(sys.modules.get(wire.FIGURES_MODULE), "_state", None)
    if not isinstance(state, dict) or "paused" not in state:  # no recorder, or one of another version
        yield
        return
    before, state["paused"] = state["paused"], not on
    try:
        yield
    finally:
        state["paused"] = before


def notebook_folder() -> Path:
    """The notebook's first working folder, as grading's `workdir`: the figure
    recorder's (kept from its install, a notebook that changed directory since
    wrote its files relative to it), else the current one."""
    recorder = sys.modules.get(wire.FIGURES_MODULE)
    state = getattr(recorder, "_state", None)
    first = state.get("cwd") if isinstance(state, dict) else None
    if isinstance(first, str) and first and Path(first).is_dir():
        return Path(first)
    return Path.cwd()


def find_assets(chosen: Assignment) -> AssetStore:
    """The asset folder the checks compare against (the module's docstring says which);
    one of kind "none" where this machine has none."""
    given = os.environ.get("AUTOGRADER_ASSETS")
    if given:
        return AssetStore(Path(given).expanduser().resolve())
    made = default_store()
    if made.kind != "none":
        return made
    if ASSETS_VIEW.is_dir():
        kind = getattr(sys.modules.get(wire.GRADING_MODULE), "assets_kind", "stand-in")  # the grader says which
        return _linked_store({"": ASSETS_VIEW}, kind=str(kind))
    if KAGGLE_INPUT.is_dir():
        links = {
            folder: KAGGLE_INPUT / path.strip("/")
            for path, folder in chosen.config.kaggle_inputs.items()
            if (KAGGLE_INPUT / path.strip("/")).is_dir()
        }
        return _linked_store({**links, "torch": _torch_home()}, kind="real")
    return made


def _linked_store(links: dict[str, Path], *, kind: str) -> AssetStore:
    """An asset folder of links to what this machine has (`""`: the whole public part)."""
    root = Path(tempfile.mkdtemp(prefix="autograder-assets-"))
    public = root / "public"
    if "" in links:
        public.symlink_to(links[""], target_is_directory=True)
    else:
        public.mkdir()
        for name, target in links.items():
            (public / name).symlink_to(target, target_is_directory=True)
    (root / "manifest.json").write_text(json.dumps({"kind": kind, "id": f"self-check-{kind}"}), encoding="utf-8")
    return AssetStore(root)


def _torch_home() -> Path:
    """Where torchvision keeps the weights this kernel loaded ($TORCH_HOME)."""
    import torch

    return Path(torch.hub.get_dir()).parent


def _course_paths(chosen: Assignment) -> list[str]:
    return [f"{KAGGLE_INPUT}/{path.strip('/')}" for path in chosen.config.kaggle_inputs]


def _assignment(course: Course, namespace: dict[str, Any], asked: str | None) -> tuple[Assignment, str]:
    """The assignment to check: as asked; else the notebook's file name, where the
    kernel knows it; else the names the assignments' checks ask for."""
    if asked is not None:
        return course.get(asked), "as asked"
    names = AssignmentNames(course)
    for where in (namespace.get("__session__"), os.environ.get("JPY_SESSION_NAME")):
        if isinstance(where, str) and where and (name := names(Path(where).name)):
            return course.get(name), f"from the notebook's name {Path(where).name}"
    name = _by_names(course, namespace)
    if name is not None:
        return course.get(name), "from the names this notebook defines"
    raise LookupError(
        "cannot tell which assignment this notebook is: call selfcheck.check(NAME) with one of "
        + ", ".join(course.names())
    )


def _by_names(course: Course, namespace: dict[str, Any]) -> str | None:
    """The assignment whose prescribed names (those its public checks fetch, call
    or look for) this namespace defines: at least half of them, and more of them
    (as a share, then in number) than of any other assignment's."""
    scores = []
    for name in course.names():
        wanted = _prescribed(tuple(course.get(name).public_checks))
        found = sum(n in namespace for n in wanted)
        if wanted and found * 2 >= len(wanted):
            scores.append((found / len(wanted), found, name))
    scores.sort(reverse=True)
    if not scores or (len(scores) > 1 and scores[1][:2] == scores[0][:2]):
        return None
    return scores[0][2]


@functools.lru_cache(maxsize=16)
def _prescribed(files: tuple[Path, ...]) -> frozenset[str]:
    """The names checks ask `student` for by a literal: fetch("x"), call("f", ...), has("x")."""
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("fetch", "call", "has")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    return frozenset(found)


def _cells(namespace: dict[str, Any]) -> list[str | None]:
    """The code this kernel ran, cell by cell (IPython's `In`), this cell last."""
    history = namespace.get("In")
    return [str(source) for source in history[1:]] if isinstance(history, list) else []


def _user_namespace() -> dict[str, Any]:
    shell = _shell()
    if shell is None:
        raise RuntimeError("selfcheck.check() runs inside a notebook's kernel (IPython); none is running here")
    namespace: dict[str, Any] = shell.user_ns
    return namespace


def _shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _marked(verdict: str) -> str:
    colour = {"passed": "#1a7f37", "failed": "#cf222e", "environment": "#9a6700"}[verdict]
    return f'<span style="color:{colour}">{html.escape(_MARKS[verdict])}</span>'


def _footer(questions: tuple[QuestionVerdict, ...]) -> str:
    passed = sum(q.verdict == "passed" for q in questions)
    machine = sum(q.verdict == "environment" for q in questions)
    unchecked = f" ({machine} could not be checked on this machine: check on Kaggle)" if machine else ""
    return (
        f"{passed}/{len(questions)} questions pass their public checks{unchecked}. "
        "Grading also runs hidden checks on new inputs, so passing here is not a final grade."
    )
