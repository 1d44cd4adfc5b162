"""Grading one submission: intake -> execution -> checks -> scoring -> result.

`grade_notebook` never raises for a bad submission: whatever goes wrong
becomes a result with a status and a reason, so a batch always goes on.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from nbformat import NotebookNode

from autograder.answers import find_answers
from autograder.assets import AssetStore, course_datasets, default_store
from autograder.bridge import Student
from autograder.checks import CheckContext, CheckFile, run_checks, unloaded_check_files
from autograder.course import Assignment, Course
from autograder.environment import GpuUse, MissingData, blames_machine, describe_environment, grader_version
from autograder.errors import BridgeError, NotANotebookError, UnknownAssignmentError
from autograder.execution import executed_notebook
from autograder.intake import Submission, read_submission
from autograder.isolation import IsolationRefusedError, Workspace, open_workspace
from autograder.isolation.container import ContainerSettings, grade_in_container
from autograder.predictions import cache_for
from autograder.results import ExecutionRecord, SubmissionResult
from autograder.scoring import score_outcomes
from autograder.ungraded import now as _now
from autograder.ungraded import ungraded_result


@dataclass(frozen=True)
class GradingOptions:
    """How to grade, beyond what the assignment's config says."""

    public_only: bool = False  # the student's self-check
    cell_timeout_s: float | None = None
    notebook_timeout_s: float | None = None
    container: ContainerSettings | None = None  # grade in a container of this image instead of here
    waive_isolation: str = ""  # who waived it: hidden checks may then run where student code could read them


def grade_notebook(
    path: Path,
    *,
    course: Course,
    assignment_name: str | None = None,
    options: GradingOptions = GradingOptions(),
    on_assignment: Callable[[Path, str, str], None] | None = None,
    prediction_folder: Path | None = None,
) -> SubmissionResult:
    """Grade one notebook file and return its result (graded, rejected or error).

    `on_assignment(path, name, how)` is called once the assignment is known,
    so a caller can say which one was chosen and why. `prediction_folder`
    keeps the trusted models' outputs on disk for the checks (a batch's
    `predictions.folder_for(out)`); they are kept in memory in any case.
    """
    if options.container is not None:
        result = grade_in_container(
            path,
            settings=options.container,
            assignment_name=assignment_name,
            cell_timeout_s=options.cell_timeout_s,
            notebook_timeout_s=options.notebook_timeout_s,
            public_only=options.public_only,
        )
        if on_assignment is not None and result.assignment is not None:
            on_assignment(path, result.assignment, result.assignment_chosen_by or "recognised in the container")
        return result
    started = time.monotonic()
    try:
        submission = read_submission(path)
    except NotANotebookError as error:
        return ungraded_result(path, status="rejected", reason=error.reason, assignment=assignment_name)
    try:
        if assignment_name is None:
            assignment, how = course.recognise(submission)
        else:
            assignment, how = course.get(assignment_name), "as asked with -a"
    except UnknownAssignmentError as error:
        return ungraded_result(
            path, status="rejected", reason=str(error), assignment=assignment_name, sha256=submission.sha256
        )
    if on_assignment is not None:
        on_assignment(path, assignment.name, how)
    try:
        return _grade(submission, assignment, options, started, prediction_folder)
    except IsolationRefusedError as error:  # the machine's fault, said as it is
        return ungraded_result(
            path, status="error", reason=str(error), assignment=assignment.name, sha256=submission.sha256
        )
    except Exception as error:  # one submission's failure must not stop a batch
        reason = f"the grader failed on this submission: {type(error).__name__}: {error}"
        where = traceback.format_exc()
        return ungraded_result(
            path,
            status="error",
            reason=reason,
            assignment=assignment.name,
            sha256=submission.sha256,
            grader_traceback=where,
        )


def grade_submission(
    submission: Submission, assignment: Assignment, *, options: GradingOptions = GradingOptions()
) -> SubmissionResult:
    """Grade a notebook already read as `assignment`, raising what `grade_notebook`
    records; afterwards `submission.notebook`'s cells hold what they printed
    (a test reads a self-check cell's output there)."""
    return _grade(submission, assignment, options, time.monotonic())


def _grade(
    submission: Submission,
    assignment: Assignment,
    options: GradingOptions,
    started: float,
    prediction_folder: Path | None = None,
) -> SubmissionResult:
    config = assignment.config.with_overrides(
        cell_timeout_s=options.cell_timeout_s, notebook_timeout_s=options.notebook_timeout_s
    )
    files = [CheckFile(p, "public") for p in assignment.public_checks]
    if not options.public_only:
        files += [CheckFile(p, "hidden") for p in assignment.hidden_checks]
    intake_s = time.monotonic() - started
    assets = default_store()
    if config.links or config.kaggle_inputs:
        assets.require()
    context_thresholds = config.thresholds.get(assets.kind, {})
    hidden_material = [] if options.public_only else _hidden_material(assignment, assets)
    waiver = options.waive_isolation or ("AUTOGRADER_WAIVE_ISOLATION=1" if _waived_by_environment() else "")
    with open_workspace(config, hidden_material=hidden_material, waiver=waiver) as workspace:
        isolation = workspace.isolation
        _provide_files(assignment, workspace.workdir)
        _link_assets(config.links, assets, workspace)
        with executed_notebook(submission.notebook, workspace=workspace, config=config) as (record, student):
            checks_started = time.monotonic()
            cells = submission.notebook.cells
            code = [_source(cell) if cell.get("cell_type") == "code" else None for cell in cells]
            gpu_use, missing_data = GpuUse.of(code), MissingData.of(code, workspace.missing)
            failure = _environment_failure(record, gpu_use, missing_data)
            context = CheckContext(
                workdir=workspace.workdir,
                assets=assets,
                thresholds=context_thresholds,
                cell_sources=tuple(_source(cell) for cell in cells),
                environment_cell=failure.cell if failure else None,
                gpu_use=gpu_use,
                missing_data=missing_data,
                datasets=course_datasets(assignment.public_dir.parent.parent),
                predictions=cache_for(prediction_folder if _kernel_cannot_reach_grader(workspace) else None),
            )
            outcomes = run_checks(
                files,
                student,
                environment_failure=failure.summary if failure else None,
                context=context,
                budget_s=config.checks_budget_s,
            )
            checks_s = time.monotonic() - checks_started
            curves = _curves(student, config.curves)
    sheet = score_outcomes(outcomes, config.questions)
    unloaded = unloaded_check_files(outcomes)
    return SubmissionResult(
        submission=str(submission.path),
        assignment=assignment.name,
        status="error" if unloaded else "graded",  # the grader's fault: not a grade, whatever the rest scored
        reason=_unloaded_reason(unloaded),
        score=sheet.score,
        max_score=sheet.max_score,
        bonus=sheet.bonus,
        bonus_max=sheet.bonus_max,
        questions=sheet.questions,
        checks=tuple(outcomes),
        execution=record,
        timings={
            "intake_s": round(intake_s, 3),
            "execution_s": record.seconds,
            "checks_s": round(checks_s, 3),
            "total_s": round(time.monotonic() - started, 3),
        },
        assets=assets.set_id,
        answers=find_answers(submission.notebook, config.answers),
        curves=curves,
        environment=describe_environment(),
        submission_sha256=submission.sha256,
        grader_version=grader_version(),
        graded_at=_now(),
        isolation=isolation,
    )


def _curves(student: Student, names: dict[str, str], points: int = 1000) -> dict[str, list[float]]:
    """The notebook's own lists of numbers (a loss history) for the feedback's
    plots; thinned to `points`. Shown, never scored; a missing one is skipped."""
    curves = {}
    for title, name in names.items():
        try:
            value = student.fetch(name)
        except BridgeError:
            continue
        if hasattr(value, "tolist"):
            value = value.tolist()
        if not isinstance(value, (list, tuple)) or not value:
            continue
        try:
            numbers = [float(v) for v in value]
        except (TypeError, ValueError):
            continue
        step = max(1, math.ceil(len(numbers) / points))
        curves[title] = [round(v, 6) for v in numbers[::step] if math.isfinite(v)]
    return curves


def _link_assets(links: dict[str, str], assets: AssetStore, workspace: Workspace) -> None:
    """Working-folder paths that show public asset folders (e.g. `data` for a
    notebook's `FashionMNIST(root="data")`): links to read-only files, at the
    path the kernel sees them (/assets in the sandbox)."""
    for relative, folder in links.items():
        target = workspace.workdir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        public = assets.public_folder(folder)
        shown = public if workspace.assets is None else workspace.assets / public.relative_to(assets.public)
        target.symlink_to(shown, target_is_directory=True)


def _provide_files(assignment: Assignment, workdir: Path) -> None:
    """Copy only what the assignment provides into the fresh working folder."""
    for relative in assignment.config.files:
        source = assignment.public_dir / relative
        target = workdir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    owner = workdir.stat()
    for path in workdir.rglob("*"):  # the submission's own user may change what it was given
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


class MachineFault(NamedTuple):
    """The first cell that failed for the grading machine's lack, and how, in a few words."""

    cell: int
    summary: str


def _environment_failure(record: ExecutionRecord, gpu_use: GpuUse, missing: MissingData) -> MachineFault | None:
    """The first cell that failed for the grading machine's lack (no GPU, and
    the cell's code uses CUDA; or course data it lacks, which the cell's code
    uses), and how."""
    for error in record.cell_errors:
        how = f"cell {error.cell_index} ({error.exception}: {error.message[:120]})"
        if blames_machine(f"{error.exception}: {error.message}", code_uses_gpu=error.cell_index in gpu_use.cells):
            return MachineFault(error.cell_index, how)
        if error.kind == "error" and error.cell_index in missing.cells:
            return MachineFault(error.cell_index, f"{how}; {missing.message}")
    return None


def _unloaded_reason(files: list[str]) -> str:
    if not files:
        return ""
    return (
        f"the grader's check {'file' if len(files) == 1 else 'files'} {', '.join(files)} could not be loaded,"
        " so this submission is not fully graded"
        " (the other check files ran); your instructor has the details"
    )


def _source(cell: NotebookNode) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _hidden_material(assignment: Assignment, assets: AssetStore) -> list[Path]:
    """What student code must not reach: the solutions, the hidden assets, and the
    git history of a course kept in git (it holds the solutions too)."""
    solutions = assignment.solution_dir.parent.resolve()
    repository = next((folder / ".git" for folder in solutions.parents if (folder / ".git").exists()), None)
    return [solutions, assets.hidden, *([repository] if repository else [])]


def _kernel_cannot_reach_grader(workspace: Workspace) -> bool:
    """Whether the kernel ran as another user than the grader, unable to write
    the grader's own folders (the sandbox, the container, a fresh uid); where it
    ran as the grader's user, nothing it could have written is read back."""
    return workspace.isolation.split(" ", 1)[0] in ("namespaces", "container", "user")


def _waived_by_environment() -> bool:
    return os.environ.get("AUTOGRADER_WAIVE_ISOLATION") == "1"
