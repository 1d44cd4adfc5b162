"""Checks: pytest files run in this (trusted) process, never in the kernel.

Check authors write ordinary pytest tests that take the `student` fixture (a
`student_api.StudentAPI`: the sandboxed kernel's `bridge.Student` in grading,
an `in_process.NamespaceStudent` in a self-check) and mark each test with its question and points::

    @pytest.mark.question("q1")
    @pytest.mark.points(2)
    def test_dtype(student):
        assert student.fetch("x").dtype == torch.float64, "`x` should be float64"

Assertion rewriting is off, so a failing check shows the student its own
message and nothing else (hidden checks must not reveal expected values).
pytest runs in-process, so torch stays imported between submissions, and
each check module is imported once per grader process (per batch worker) and
reused for every student it grades: module-level state and `lru_cache`d
helpers carry over from one student to the next (hidden checks rely on that
for models and held-out pictures, keyed on the asset set). What must not
carry over goes in the `submission_state` fixture (a dict that starts empty
for every submission) or a fixture of pytest's `session` scope, which lasts
one submission. The trusted models' outputs go through the `predictions`
fixture (predictions.py), which keeps them for the whole batch.
"""

from __future__ import annotations

import contextlib
import io
import re
import secrets
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
import pytest

from autograder.assets import AssetStore, CourseAsset, Dataset, bound
from autograder.environment import GpuUse, MissingData, blames_machine
from autograder.errors import AssetError, BridgeError, StudentCodeError, StudentNameError
from autograder.isolation.processes import owned_temp_folder
from autograder.predictions import Predictions, cache_for
from autograder.reference import FigureProblem
from autograder.results import CheckOutcome, CheckStatus, Visibility
from autograder.student_api import StudentAPI

UNLOADED = "(checks)"  # the question of the outcome recorded for a check file that could not be loaded
_CALLED = re.compile(r"`([\w.]+)\(\.\.\.\)` raised")  # how StudentCodeError names a called function


def unloaded_check_files(outcomes: Sequence[CheckOutcome]) -> list[str]:
    """The check files that could not be loaded (the grader's fault: nothing of theirs ran)."""
    return [outcome.name for outcome in outcomes if outcome.question == UNLOADED and outcome.status == "error"]


@dataclass(frozen=True)
class CheckFile:
    path: Path
    visibility: Visibility


@dataclass(frozen=True)
class CheckContext:
    """What checks may see besides the kernel: the executed notebook's working
    folder (for the files it wrote), the asset folder, and the thresholds set
    for the kind of assets in it."""

    workdir: Path | None = None
    assets: AssetStore | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    cell_sources: tuple[str, ...] = ()  # the notebook's cells, to tell which wrote a file
    environment_cell: int | None = None  # where the run hit the grading machine's limits
    gpu_use: GpuUse = field(default_factory=GpuUse)  # where the notebook's code uses CUDA
    missing_data: MissingData = field(default_factory=MissingData)  # course data this machine could not show it
    datasets: dict[str, Dataset] = field(default_factory=dict)  # the course's registered assets
    predictions: Predictions = field(default_factory=cache_for)  # the trusted models' outputs, once per picture

    def written_after_environment_failure(self, relative: str) -> bool:
        """True when a cell mentioning this file comes at or after the cell that
        failed for lack of a GPU: its absence is the machine's fault."""
        if self.environment_cell is None:
            return False
        name = Path(relative).name
        return any(name in source for source in self.cell_sources[self.environment_cell :])

    def defined_after_environment_failure(self, name: str) -> bool:
        """True when a missing name is written in a cell at or after the one that
        failed for lack of a GPU (it would have been defined on a GPU); a name the
        notebook never writes is missing whatever the machine. Without the cells,
        the machine is given the benefit of the doubt."""
        if self.environment_cell is None or not self.cell_sources:
            return True
        return _mentioned(name, self.cell_sources[self.environment_cell :])

    def mentions(self, name: str) -> bool:
        """Whether `name` is a word of the notebook's own cells."""
        return name.isidentifier() and _mentioned(name, self.cell_sources)

    def called_code_uses_gpu(self, error: StudentCodeError) -> bool:
        """Whether the student code a check called uses CUDA: the function it named;
        for check-written code run in the notebook (a probe), any of the notebook's code."""
        return _called_code_uses(error, self.gpu_use.cells, self.gpu_use.names)

    def called_code_uses_missing_data(self, error: StudentCodeError) -> bool:
        """Whether the student code a check called uses course data this machine lacks."""
        return _called_code_uses(error, self.missing_data.cells, self.missing_data.names)


def _called_code_uses(error: StudentCodeError, cells: frozenset[int], names: frozenset[str]) -> bool:
    called = _CALLED.match(str(error))
    if called is None:
        return bool(cells)
    return called.group(1).split(".")[0] in names


def _mentioned(name: str, sources: Sequence[str]) -> bool:
    word = re.compile(rf"(?<![\w.]){re.escape(name)}\b")
    return any(word.search(source) for source in sources)


class Thresholds(dict[str, float]):
    """A config's thresholds for one kind of assets; a missing one says so."""

    def __init__(self, values: dict[str, float], *, kind: str) -> None:
        super().__init__(values)
        self.kind = kind

    def __missing__(self, name: str) -> float:
        raise RuntimeError(f"no `{name}` threshold is set for {self.kind} assets in assignment.toml")


class Credit:
    """Lets a check award part of its points: `credit.give(0.5, "why")`."""

    def __init__(self) -> None:
        self.fraction = 1.0
        self.reason = ""

    def give(self, fraction: float, reason: str) -> None:
        self.fraction = min(1.0, max(0.0, float(fraction)))
        self.reason = reason


class _CheckSession:
    """The pytest plugin: provides the fixtures and records every outcome."""

    def __init__(
        self,
        student: StudentAPI,
        files: Sequence[CheckFile],
        environment_failure: str | None,
        context: CheckContext,
    ) -> None:
        self._student = student
        self._context = context
        self._visibility = {f.path.resolve(): f.visibility for f in files}
        self._environment_failure = environment_failure
        self._credits: dict[str, Credit] = {}
        self.outcomes: list[CheckOutcome] = []
        self.deadline: float | None = None  # when the checks phase's budget runs out (time.monotonic())
        self.budget = ""
        self._submission_state: dict[str, Any] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Past the budget, each remaining check is recorded as not run, before its fixtures."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            pytest.skip(f"{self.budget} ran out before this check started")

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "question(id): the question this check belongs to")
        config.addinivalue_line("markers", "points(n, bonus=False): points this check is worth")

    @pytest.fixture(name="student")
    def student_fixture(self) -> StudentAPI:
        return self._student

    @pytest.fixture(name="credit")
    def credit_fixture(self, request: pytest.FixtureRequest) -> Credit:
        return self._credits.setdefault(request.node.nodeid, Credit())

    @pytest.fixture(name="workdir")
    def workdir_fixture(self) -> Path:
        """The executed notebook's working folder. Read what it wrote with
        `autograder.reference.read_figure` or `staging.read_inside`, which never
        follow the student's links."""
        if self._context.workdir is None:
            raise RuntimeError("this grading gives the checks no working folder")
        return self._context.workdir

    @pytest.fixture(name="assets")
    def assets_fixture(self) -> AssetStore:
        if self._context.assets is None:
            raise RuntimeError("this grading gives the checks no asset folder")
        self._context.assets.require()
        return self._context.assets

    @pytest.fixture(name="data")
    def data_fixture(self) -> dict[str, CourseAsset]:
        """The course's registered assets (`assignments/assets.toml`) in this
        asset folder: `data[name].public`, `.hidden` (folders), `.module` and
        `.hidden_module` (the course's modules, with their readers)."""
        if self._context.assets is None:
            raise RuntimeError("this grading gives the checks no asset folder")
        self._context.assets.require()
        return bound(self._context.datasets, self._context.assets)

    @pytest.fixture(name="predictions")
    def predictions_fixture(self) -> Predictions:
        """The trusted models' outputs, computed once per picture for the whole
        batch (`autograder.predictions`), e.g.
        `predictions.probabilities(assets, "resnet18", images, preprocessing=preprocessing("resnet18"))`."""
        return self._context.predictions

    @pytest.fixture(name="submission_state")
    def submission_state_fixture(self) -> dict[str, Any]:
        """A dict that starts empty for every submission: where a check keeps
        what must not carry over to the next student (check modules are
        imported once per worker, so their module-level state and caches do)."""
        return self._submission_state

    @pytest.fixture(name="thresholds")
    def thresholds_fixture(self) -> dict[str, float]:
        """The assignment's thresholds for the kind of assets graded with ("stand-in", "real");
        one the config does not set makes the check an `error` naming it (the course's fault)."""
        kind = self._context.assets.kind if self._context.assets is not None else "these"
        return Thresholds(self._context.thresholds, kind=kind)

    @pytest.fixture(name="fresh_seed")
    def fresh_seed_fixture(self) -> int:
        """A seed the student cannot predict, for inputs the student never saw."""
        return secrets.randbits(62)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        yield
        if call.when == "call" or (call.when == "setup" and call.excinfo is not None):
            self.outcomes.append(self._outcome(item, call))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pluggy.Result[pytest.CollectReport], None]:
        """A check file that fails to load (it raises on import) is recorded by its
        own path; the report's path is relative to the scratch rootdir."""
        outcome = yield
        report = outcome.get_result()
        if report.failed:
            path = collector.path.resolve()
            self.outcomes.append(
                CheckOutcome(
                    question=UNLOADED,
                    name=path.name,
                    visibility=self._visibility.get(path, "hidden"),
                    status="error",
                    score=0.0,
                    max_score=0.0,
                    message=f"the grader's check file {path.name} could not be loaded; tell your instructor",
                    grader_traceback=str(report.longrepr),
                )
            )

    def _outcome(self, item: pytest.Item, call: pytest.CallInfo[None]) -> CheckOutcome:
        question = item.get_closest_marker("question")
        points = item.get_closest_marker("points")
        max_score = float(points.args[0]) if points and points.args else 1.0
        bonus = bool(points.kwargs.get("bonus", False)) if points else False
        credit = self._credits.get(item.nodeid, Credit())
        visibility = self._visibility.get(Path(str(item.path)).resolve(), "hidden")
        status, message = self._verdict(call, credit, hidden=visibility == "hidden")
        score = max_score * credit.fraction if status == "passed" else 0.0
        if status == "passed" and credit.fraction < 1.0:
            status = "failed"
        return CheckOutcome(
            question=str(question.args[0]) if question and question.args else "(no question)",
            name=item.name,
            visibility=visibility,
            status=status,
            score=round(score, 6),
            max_score=max_score,
            bonus=bonus,
            message=message,
            grader_traceback=_traceback(call) if status == "error" else "",
        )

    def _verdict(self, call: pytest.CallInfo[None], credit: Credit, *, hidden: bool) -> tuple[CheckStatus, str]:
        if call.excinfo is None:
            return "passed", credit.reason
        error = call.excinfo.value
        if isinstance(error, pytest.skip.Exception):
            return "not-run", f"skipped: {error.msg}"
        if isinstance(error, FigureProblem) and self._context.written_after_environment_failure(error.relative):
            return "environment", f"{_author_message(error)}: the notebook stopped at {self._environment_failure}"
        if isinstance(error, AssertionError):
            return "failed", _author_message(error)
        if isinstance(error, AssetError):  # this machine lacks the course's files: nothing the student did
            said = "" if hidden else f" ({error})"
            return "environment", f"this machine lacks the course's assets{said}: check on Kaggle, or regrade"
        if not isinstance(error, BridgeError):
            # A hidden check's own error may carry what the kernel sent (a device
            # string, a key, a label): only its class is shown; the whole error
            # is in grader_traceback for the instructor.
            said = type(error).__name__ if hidden else f"{type(error).__name__}: {error}"
            return "error", f"the check itself failed ({said}); tell your instructor"
        said = self._told(error) if hidden else str(error)
        if isinstance(error, StudentCodeError) and blames_machine(
            str(error), code_uses_gpu=self._context.called_code_uses_gpu(error)
        ):
            return "environment", f"{said} (the grading machine has no GPU: regrade on a GPU)"
        if isinstance(error, StudentCodeError) and self._context.called_code_uses_missing_data(error):
            return "environment", f"{said}; {self._context.missing_data.message}"
        if (
            isinstance(error, StudentNameError)
            and self._environment_failure
            and self._context.defined_after_environment_failure(str(error.name))
        ):
            return "environment", f"{said}: the notebook stopped at {self._environment_failure}"
        return "failed", said

    def _told(self, error: BridgeError) -> str:
        """What a hidden check tells of a bridge error: the grader's words, and a
        missing name the kernel reported only where the notebook's cells write it
        (the student's own word, not one of the probe's)."""
        if isinstance(error, StudentNameError) and not error.asked and self._context.mentions(str(error.name)):
            return str(error)
        return error.without_kernel_text


def _traceback(call: pytest.CallInfo[None]) -> str:
    """For the instructor: where a check itself broke (never shown to the student)."""
    return str(call.excinfo.getrepr(style="short")) if call.excinfo is not None else ""


def _author_message(error: AssertionError) -> str:
    """The check author's own words only: never pytest's explanation, which
    would show the expected value (it appears when assertions were rewritten)."""
    first = str(error).strip().split("\n", 1)[0]
    if not first or first.startswith("assert "):
        return "the result is not what the question asks for"
    return first


def run_checks(
    files: Sequence[CheckFile],
    student: StudentAPI,
    *,
    environment_failure: str | None = None,
    context: CheckContext | None = None,
    budget_s: float | None = None,
) -> list[CheckOutcome]:
    """Run the given check files against `student` and return one outcome per check.

    With `budget_s`, the checks together wait on the kernel at most that long
    (`checks_timeout_s`): the call in flight then fails, and the checks left are
    recorded as not run, both with a message naming the budget."""
    if not files:
        return []
    session = _CheckSession(student, files, environment_failure, context or CheckContext())
    budget = student.budget(budget_s, "checks_timeout_s") if budget_s else contextlib.nullcontext()
    if budget_s:
        session.deadline = time.monotonic() + budget_s
        session.budget = f"the {budget_s:g} s budget for checks (checks_timeout_s)"
    with owned_temp_folder("checks-") as scratch:
        ini = scratch / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        arguments: list[Any] = [
            *(str(f.path) for f in files),
            "-c",
            str(ini),
            "--rootdir",
            str(scratch),
            "--import-mode=importlib",
            "--assert=plain",
            "--strict-markers",
            "--continue-on-collection-errors",  # one broken check file must not stop the others
            "-p",
            "no:cacheprovider",
            "-p",
            "no:stepwise",
            # its warnings are dropped (--disable-warnings), and its clean-up
            # runs gc.collect() over and over: ~0.2 s CPU per submission with torch loaded
            "-p",
            "no:unraisableexception",
            "-q",
            "--no-header",
            "--disable-warnings",
        ]
        with budget, contextlib.redirect_stdout(io.StringIO()):  # pytest's own summary is not ours to print
            pytest.main(arguments, plugins=[session])
    return session.outcomes
