"""The `autograder` command. Each command parses its options and calls one
library function; errors become a one-line message and an exit code."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from autograder import github
from autograder.api import grade_batch_into, grade_one, notebooks_in
from autograder.assets import default_store, fetch
from autograder.assets import status as asset_status
from autograder.batch import BatchItem
from autograder.config import AssignmentConfig
from autograder.contract import verify_assignment
from autograder.course import Course
from autograder.errors import AutograderError, UsageError
from autograder.exports import gradescope_results
from autograder.gradescope import export_gradescope
from autograder.grading import GradingOptions, grade_notebook
from autograder.isolation import isolation_here
from autograder.isolation.container import ContainerSettings, image_id, remove_orphans, result_only_on_stdout
from autograder.results import SubmissionResult
from autograder.safe_text import plain_text
from autograder.scoring import self_check_summary
from autograder.selection import Selection
from autograder.standins import synth
from autograder.terminal import render_batch, render_grade, render_self_check, render_students

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)


def _course(context: click.Context) -> Course:
    root = context.obj.get("course")
    return Course(root) if root is not None else Course.default()


def _say_if_unsandboxed() -> None:
    isolation = isolation_here()
    if isolation.kind == "user":
        _err.print(
            f"[yellow]note:[/] no sandbox here ({escape(isolation.reason)}): each kernel runs as a fresh "
            "unprivileged user only, and solutions must be root's alone"
        )
    elif isolation.kind == "user-namespace":
        _err.print(
            "[yellow]note:[/] notebooks run with your own rights, seeing what grading shows them "
            "(/kaggle/input, no network: a user namespace), not sandboxed; "
            "fine for your own notebook; grade other people's as root: a grading server or container"
        )
    elif isolation.kind == "none":
        _err.print(
            f"[yellow]note:[/] notebooks run unsandboxed, with your own rights ({escape(isolation.reason)}); "
            "fine for your own notebook; grade other people's as root: a grading server or container"
        )


def _say_assignment(path: Path, name: str, how: str) -> None:
    _err.print(f"[dim]{_shown(path.name)}: assignment {_shown(name)} ({_shown(how)})[/]")


def _warn(text: str) -> None:
    _err.print(f"[yellow]warning:[/] {_shown(text)}")


def _shown(text: str) -> str:
    """Untrusted text (a file name, a reason quoting one) for a rich markup string: no
    markup, no control characters (`safe_text`)."""
    return escape(plain_text(text, one_line=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--course",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Course folder holding assignments/ and solutions/ (default: this project's).",
)
@click.pass_context
def cli(context: click.Context, course: Path | None) -> None:
    """Grade deep-learning notebook assignments."""
    context.obj = {"course": course}


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-a",
    "--assignment",
    "assignments",
    multiple=True,
    help="Assignment name (default: recognised per notebook). Given once, every notebook is graded as it; "
    "given again (a batch of two notebooks each), it limits recognition to those.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the result here (one notebook); '-' writes it alone on stdout.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Batch mode: grade files, folders and zips into this results folder (resumable).",
)
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Parallel workers for --out (default: one per core).")
@click.option(
    "--dask",
    "scheduler",
    help="With --out: grade on Dask distributed: 'local' (a LocalCluster of -j workers) or a scheduler address.",
)
@click.option("--force", is_flag=True, help="With --out: regrade even what is already graded.")
@click.option("--student", "only_student", help="With --out: grade only this student (folder or file name).")
@click.option("--roster", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="CSV: match,name,id.")
@click.option(
    "--gradescope",
    "gradescope_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write Gradescope's results.json here (one notebook).",
)
@click.option("--cell-timeout", type=float, help="Override the config's per-cell limit (seconds).")
@click.option("--notebook-timeout", type=float, help="Override the config's whole-notebook limit (seconds).")
@click.option("--docker", "image", help="Grade each notebook in its own container of this image (README: Docker).")
@click.option("--gpus", help="With --docker: GPUs for each container, as docker run --gpus takes them ('all').")
@click.option("--memory", help="With --docker: memory of each container, grader and kernel together (default 6g).")
@click.option("--cpus", type=click.FloatRange(min=0.01), help="With --docker: CPUs of each container (default 2).")
@click.option("--public-only", is_flag=True, hidden=True, help="The public checks alone (a self-check in a container).")
@click.option(
    "--waive-isolation",
    is_flag=True,
    help="Run hidden checks even where student code could read them (no sandbox here); recorded in each result.",
)
@click.pass_context
def grade(
    context: click.Context,
    paths: tuple[Path, ...],
    assignments: tuple[str, ...],
    json_path: Path | None,
    out: Path | None,
    jobs: int | None,
    scheduler: str | None,
    force: bool,
    only_student: str | None,
    roster: Path | None,
    gradescope_path: Path | None,
    cell_timeout: float | None,
    notebook_timeout: float | None,
    image: str | None,
    gpus: str | None,
    memory: str | None,
    cpus: float | None,
    public_only: bool,
    waive_isolation: bool,
) -> int:
    """Grade notebooks with public and hidden checks.

    Exit 0 when every notebook was graded (whatever its score), 2 when one was
    rejected (not a notebook, unknown assignment), 1 when the grader failed.
    With --out, a rejected submission is a row of the batch: exit 0 unless the
    grader itself failed on one.
    """
    if (json_path is not None or gradescope_path is not None) and (len(paths) != 1 or out is not None):
        raise UsageError("--json takes one notebook; use --out DIR for several")
    if out is None and (jobs or force or only_student or roster or scheduler):
        raise UsageError("-j, --dask, --force, --student and --roster go with --out DIR")
    if image is None and (gpus or memory or cpus):
        raise UsageError("--gpus, --memory and --cpus go with --docker IMAGE")
    course = _course(context)
    assignments = tuple(dict.fromkeys(assignments))
    if image is None:  # with --docker, the image's course decides
        for name in assignments:
            course.get(name)  # an unknown name is a usage error before any work (and before any note)
    options = GradingOptions(
        cell_timeout_s=cell_timeout,
        notebook_timeout_s=notebook_timeout,
        container=_container(image, gpus=gpus, memory=memory, cpus=cpus, course=context.obj.get("course")),
        waive_isolation="--waive-isolation" if waive_isolation else "",
        public_only=public_only,
    )
    if json_path == Path("-"):  # the result alone on stdout: how the grading container answers
        with result_only_on_stdout() as send:
            assignment = assignments[0] if len(assignments) == 1 else None
            result = grade_notebook(paths[0], course=course, assignment_name=assignment, options=options)
            send(result.to_json())
        return _exit_code([result])
    if out is not None:
        return _grade_into_folder(
            paths,
            out=out,
            course=course,
            assignments=assignments,
            workers=jobs,
            force=force,
            only_student=only_student,
            roster=roster,
            options=options,
            scheduler=scheduler,
        )
    return _grade_each(
        paths,
        course=course,
        assignments=assignments,
        options=options,
        json_path=json_path,
        gradescope_path=gradescope_path,
    )


def _container(
    image: str | None, *, gpus: str | None, memory: str | None, cpus: float | None, course: Path | None
) -> ContainerSettings | None:
    """--docker's settings, once what an earlier grader that died left behind is removed; without
    --docker, None, once the user is told how unsandboxed this machine is."""
    if image is None:
        _say_if_unsandboxed()
        return None
    settings = ContainerSettings(
        image,
        gpus=gpus,
        memory=memory or ContainerSettings.memory,
        cpus=cpus or ContainerSettings.cpus,
        course=course,
        image_id=image_id(image),
    )
    remove_orphans()
    return settings


def _grade_each(
    paths: tuple[Path, ...],
    *,
    course: Course,
    assignments: tuple[str, ...],
    options: GradingOptions,
    json_path: Path | None,
    gradescope_path: Path | None,
) -> int:
    """Without --out: each notebook graded and shown as it finishes; a student's folder ends with one line."""
    if (json_path is not None or gradescope_path is not None) and paths[0].is_dir():
        raise UsageError("--json and --gradescope take one notebook; use --out DIR for a folder")
    results = []
    for path, student in notebooks_in(paths, course=course):
        result = grade_one(
            path,
            course=course,
            assignments=assignments,
            options=options,
            student=student,
            on_assignment=_say_assignment,
            on_warning=_warn,
        )
        render_grade(result, _out)
        if json_path is not None:
            json_path.write_text(result.to_json(), encoding="utf-8")
        if gradescope_path is not None:
            gradescope_path.write_text(json.dumps(gradescope_results(result), indent=2), encoding="utf-8")
        results.append(result)
    if len({r.student for r in results}) < len(results):  # a student's folder: one line covering it all
        render_students(results, _out)
    return _exit_code(results)


@cli.command()
@click.argument("notebooks", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-a", "--assignment", help="Assignment name (default: recognised per notebook).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "github", "json"]),
    default="text",
    help="github: for a workflow run, also a job summary in $GITHUB_STEP_SUMMARY and GitHub Classroom's "
    "points notices on stdout (README: Checking on your pull request). json: each notebook's verdict per "
    "question on stdout, for scripts.",
)
@click.option("--json", "output_format", flag_value="json", help="The same as --format json.")
@click.pass_context
def check(context: click.Context, notebooks: tuple[Path, ...], assignment: str | None, output_format: str) -> int:
    """Self-check notebooks with the public checks only.

    Exit 0 when every public check passes, 1 when some fail, 2 when a file
    cannot be checked (with --json too). With --format github: 0 whenever the notebooks were
    checked (the summary says how they did), 1 when the grader failed, or when
    the assignment sets fail_on_failed_check and a check failed.
    """
    course = _course(context)
    if assignment is not None:
        course.get(assignment)  # an unknown name is a usage error before any work
    if output_format in ("text", "json"):
        results = _check_each(notebooks, course=course, assignment=assignment, quiet=output_format == "json")
        if output_format == "json":
            click.echo(json.dumps([self_check_summary(result) for result in results], indent=2))
        if any(result.status != "graded" for result in results):
            return _exit_code(results)
        return 0 if all(c.status == "passed" for r in results for c in r.checks) else 1
    with github.commands_stopped(sys.stdout):  # student text in the log stays text
        results = _check_each(notebooks, course=course, assignment=assignment)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        github.append_job_summary(Path(summary), results)
    else:
        _err.print("[yellow]note:[/] GITHUB_STEP_SUMMARY is not set: no job summary written")
    for line in github.classroom_notices(results):
        click.echo(line)
    return github.exit_code(results, course=course)


def _check_each(
    notebooks: tuple[Path, ...], *, course: Course, assignment: str | None, quiet: bool = False
) -> list[SubmissionResult]:
    _say_if_unsandboxed()
    results = []
    for notebook in notebooks:
        result = grade_notebook(
            notebook,
            course=course,
            assignment_name=assignment,
            options=GradingOptions(public_only=True),
            on_assignment=_say_assignment,
        )
        render_self_check(result, _err if quiet else _out)
        results.append(result)
    return results


@cli.command(name="list")
@click.pass_context
def list_assignments(context: click.Context) -> int:
    """List the assignments this course has: name, then title."""
    course = _course(context)
    for name in course.names():
        click.echo(f"{name}\t{course.get(name).config.title}")
    return 0


@cli.command()
@click.argument("name")
@click.pass_context
def verify(context: click.Context, name: str) -> int:
    """Check an assignment's contract: full marks, zero template, no leaks; list its settings."""
    course = _course(context)
    config = course.get(name).config
    _out.print(f"settings of {escape(name)} (assignment.toml; solutions/ may overlay grader-only ones):")
    for key, meaning in AssignmentConfig.describe().items():
        _out.print(f"     {key} = {escape(repr(getattr(config, key)))}  [dim]{escape(meaning)}[/]", soft_wrap=True)
    findings = verify_assignment(course, name)
    for finding in findings:
        _out.print(f"{'[green]ok[/]  ' if finding.ok else '[red]FAIL[/]'} {finding.what}")
    return 0 if all(f.ok for f in findings) else 1


@cli.group()
def export() -> None:
    """Package an assignment for another platform."""


@export.command(name="gradescope")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Zip to write (default: NAME-gradescope.zip).",
)
@click.pass_context
def export_gradescope_command(context: click.Context, name: str, output: Path | None) -> int:
    """Write the Gradescope autograder zip (setup.sh, run_autograder) for NAME."""
    target = export_gradescope(_course(context), name, output or Path(f"{name}-gradescope.zip"))
    _out.print(f"wrote {target}")
    return 0


@cli.group()
def assets() -> None:
    """Weights and datasets for grading with no network (folder: $AUTOGRADER_ASSETS).

    Which assets exist is the course's: `assignments/assets.toml` registers them."""


@assets.command(name="synth")
@click.pass_context
def assets_synth(context: click.Context) -> int:
    """Generate small stand-ins of every asset the course registers (minutes)."""
    store = default_store()
    quality = synth(store, _course(context).datasets(), log=lambda line: _err.print(f"[dim]{line}[/]"))
    for part, figures in quality.items():
        _out.print(f"{part}: " + ", ".join(f"{name} {value}" for name, value in figures.items()))
    _out.print(f"stand-in assets in {store.root}")
    return 0


def _source(text: str) -> tuple[str, Path]:
    name, equals, path = text.partition("=")
    if not equals or not name or not path:
        raise click.BadParameter(f"{text!r} is not NAME=PATH")
    if not Path(path).exists():
        raise click.BadParameter(f"{path} does not exist")
    return name, Path(path)


@assets.command(name="fetch")
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME=PATH",
    help="An asset's real files from a folder or zip you have (repeatable), e.g. "
    "intel-image-classification=archive.zip (Kaggle's set needs an account).",
)
@click.option(
    "--intel",
    type=click.Path(exists=True, path_type=Path),
    help="Same as --source intel-image-classification=PATH.",
)
@click.option("--no-download", is_flag=True, help="Only unpack what --source gives; download nothing.")
@click.pass_context
def assets_fetch(context: click.Context, sources: tuple[str, ...], intel: Path | None, no_download: bool) -> int:
    """The real files of every registered asset: downloads (needs a network) and given sources."""
    store = default_store()
    given = dict(_source(text) for text in sources)
    if intel is not None:
        given["intel-image-classification"] = intel
    for line in fetch(store, _course(context).datasets(), sources=given, download=not no_download):
        _out.print(line)
    _out.print(f"assets ({store.kind}) in {store.root}")
    return 0


@assets.command(name="status")
@click.pass_context
def assets_status(context: click.Context) -> int:
    """What is present, real or stand-in; exit 3 when nothing is, or when a
    stand-in set lacks an asset the course registers (synth again)."""
    store = default_store()
    _out.print(f"{store.root}: {store.kind} ({store.set_id})")
    rows = asset_status(store, _course(context).datasets())
    for part, state, detail in rows:
        colour = "red" if state == "missing" else "green"
        _out.print(f"  [{colour}]{state:9}[/] {part:26} {detail}")
    if store.kind == "stand-in" and any(state == "missing" for _, state, _ in rows):
        _err.print("a registered asset has no stand-in yet: run `autograder assets synth`")
        return 3
    return 0 if store.kind != "none" else 3


def _grade_into_folder(
    paths: tuple[Path, ...],
    *,
    out: Path,
    course: Course,
    assignments: tuple[str, ...],
    workers: int | None,
    force: bool,
    only_student: str | None,
    roster: Path | None,
    options: GradingOptions,
    scheduler: str | None,
) -> int:
    """Batch mode: `grade_batch_into` with a progress bar, then its summary and the table."""
    bar = _ProgressBar()

    def chosen(selection: Selection) -> None:
        _say_chosen(selection, assignments)
        bar.start(len(selection.entries))  # drawn while the cache is read, before the first result

    with bar:
        summary = grade_batch_into(
            paths,
            out=out,
            course=course,
            assignments=assignments,
            workers=workers,
            force=force,
            only_student=only_student,
            roster=roster,
            options=options,
            scheduler=scheduler,
            on_chosen=chosen,
            on_start=bar.set_total,
            on_result=bar.advance,
        )
    counts = summary.counts
    _err.print(
        f"{len(summary.items)} submissions: {counts['graded']} graded, {counts['rejected']} rejected, "
        f"{counts['error']} errors ({summary.cached} already graded, reused) "
        f"in {summary.seconds:.1f} s with {summary.workers} worker(s)"
    )
    render_batch(summary.items, _out)
    if summary.unmatched:
        _err.print(
            f"[yellow]gradebook-canvas.csv:[/] no id to match on for {len(summary.unmatched)} student(s), so Canvas "
            f"can match only their names: {_shown(', '.join(summary.unmatched))} (give --roster an id, sis_user_id "
            "or sis_login_id column)"
        )
    _out.print(f"[dim]results, gradebook, feedback and summary.html in {out}[/]")
    return 1 if counts["error"] else 0


class _ProgressBar:
    """The batch's bar on stderr, fed by `grade_batch_into`'s callbacks: drawn from
    `start` until the `with` block ends."""

    def __init__(self) -> None:
        columns = (TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        self._progress = Progress(*columns, console=_err, transient=False)
        self._task: TaskID | None = None

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def start(self, total: int) -> None:
        self._task = self._progress.add_task("grading", total=total)
        self._progress.start()

    def set_total(self, total: int, done: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, total=total)

    def advance(self, item: BatchItem) -> None:
        if self._task is not None:
            self._progress.advance(self._task)


def _say_chosen(chosen: Selection, assignments: tuple[str, ...]) -> None:
    """What choosing set aside: a batch says it before grading."""
    for warning in chosen.warnings:
        _warn(warning)
    if chosen.left_out:
        _err.print(
            f"{len(chosen.left_out)} notebook(s) of other assignments than {', '.join(assignments)} (-a) left out"
        )
    duplicates = sum(len(entry.duplicates) for entry in chosen.entries)
    if duplicates:
        _err.print(f"{duplicates} duplicate notebook(s) not counted: one per student and assignment (gradebook.csv)")


def _exit_code(results: list[SubmissionResult]) -> int:
    if any(r.status == "rejected" for r in results):
        return 2
    if any(r.status == "error" for r in results):
        return 1
    return 0


def main() -> None:
    """Console entry point: `run` the command line, and exit with its code."""
    # SIGTERM and a hang-up unwind like an exception, so every open sandbox is torn down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    sys.exit(run(sys.argv[1:]))


def run(args: Sequence[str]) -> int:
    """Run one command line in this process; every expected error becomes a
    one-line message and the exit code it maps to (`errors.py`)."""
    try:
        code = cli.main(list(args), standalone_mode=False)
    except click.exceptions.Abort:
        _err.print("interrupted")
        return 130
    except click.ClickException as error:
        error.show()
        return 2 if isinstance(error, click.UsageError) else error.exit_code
    except AutograderError as error:
        _err.print(f"error: {plain_text(str(error))}", markup=False)
        return error.exit_code
    return code if isinstance(code, int) else 0
