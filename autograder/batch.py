"""Grading many submissions: a pool of worker processes (a worker that dies
costs only the submission it held, retried once: `pool.py`), results written
atomically as each finishes, and a resumable results folder.

Each result is stored as `results/<label>.<key>.json`, where `key` hashes the
notebook, the assignment's checks and config, the asset set and the grader's
version. A rerun grades only entries whose file for the current key is
missing, so an interrupted batch (Ctrl-C, kill -9) resumes where it stopped,
and nothing is graded twice or lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from autograder.assets import default_store
from autograder.course import Course
from autograder.environment import grader_version
from autograder.errors import AutograderError, UsageError
from autograder.grading import GradingOptions, grade_notebook
from autograder.intake import read_submission
from autograder.isolation import share_cores, start_forkserver, tear_down_live_sandboxes, usable_cores
from autograder.pool import JobAnswer, WorkerFailure, run_jobs
from autograder.predictions import folder_for
from autograder.results import SubmissionResult
from autograder.selection import refused as refused_result
from autograder.staging import read_regular
from autograder.submissions import Entry
from autograder.ungraded import ungraded_result

_CLEANUP_GRACE_S = 20.0
_PARENT_GONE = threading.Event()  # set in a worker whose grader has died


STATUSES = ("graded", "rejected", "error")


def count_statuses(items: Sequence[BatchItem]) -> dict[str, int]:
    """How many results of a batch have each status."""
    return {status: sum(item.result.status == status for item in items) for status in STATUSES}


@dataclass(frozen=True)
class BatchItem:
    entry: Entry
    result: SubmissionResult
    cached: bool


def default_workers() -> int:
    """One worker per core: each runs one kernel at a time."""
    return usable_cores()


def grade_batch(
    entries: Sequence[Entry],
    *,
    course: Course,
    out: Path,
    assignment_name: str | None = None,
    workers: int = 1,
    force: bool = False,
    options: GradingOptions | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[BatchItem], None] | None = None,
    scheduler: str | None = None,
) -> list[BatchItem]:
    """Grade every entry not yet graded under `out` (all of them with `force`).

    `on_start(total, cached)` is called once, `on_result` once per entry.
    `scheduler` runs the grading on Dask instead of the local pool: "local"
    for a `LocalCluster` of `workers` processes, or a scheduler address.
    """
    options = options or GradingOptions()
    _require_distinct_labels(entries)
    store = out / "results"
    store.mkdir(parents=True, exist_ok=True)
    keys = {entry: cache_key(entry, course, assignment_name, options) for entry in entries}
    items: list[BatchItem] = []
    todo: list[Entry] = []
    for entry in entries:
        stored = _stored(store, entry, keys[entry])
        if stored is not None and not force:
            items.append(BatchItem(entry, _as_chosen(stored, entry), cached=True))
        elif entry.refusal:  # nothing to run: refused before grading
            refused = refused_result(entry.path, entry.refusal, student=entry.name or entry.student)
            _write_result(store, entry.label, keys[entry], refused.to_json())
            items.append(BatchItem(entry, refused, cached=False))
        else:
            todo.append(entry)
    if on_start is not None:
        on_start(len(entries), len(items))
    for item in items:
        if on_result is not None:
            on_result(item)
    jobs = [
        (
            entry,
            (
                str(entry.path),
                entry,
                str(course.root),
                entry.assignment or assignment_name,
                options,
                str(store),
                keys[entry],
            ),
        )
        for entry in todo
    ]
    run = _run_on_dask(jobs, scheduler, workers, keys) if scheduler else _run_locally(jobs, workers)
    for entry, outcome in run:
        result = _finished(outcome, entry, entry.assignment or assignment_name)
        if scheduler:  # dask workers may not share this file system: keep a copy here too
            _write_result(store, entry.label, keys[entry], result.to_json())
        item = BatchItem(entry, result, cached=False)
        items.append(item)
        if on_result is not None:
            on_result(item)
    order = {entry: index for index, entry in enumerate(entries)}
    return sorted(items, key=lambda item: order[item.entry])


_Job = tuple[Entry, tuple[str, Entry, str, "str | None", GradingOptions, str, str]]


def _run_locally(jobs: list[_Job], workers: int) -> Iterator[tuple[Entry, JobAnswer]]:
    """On this machine's cores; a worker that dies (out of memory, a crash) costs
    only the submission it was grading, which is retried once (`pool.run_jobs`)."""
    workers = max(1, min(workers, len(jobs) or 1))
    return run_jobs(_grade_one, jobs, workers=workers, initializer=_follow_parent, initargs=(os.getpid(), workers))


def _run_on_dask(
    jobs: list[_Job], scheduler: str, workers: int, keys: dict[Entry, str]
) -> Iterator[tuple[Entry, JobAnswer]]:
    """The same work on Dask distributed: a LocalCluster, or any scheduler (Slurm via dask-jobqueue)."""
    from distributed import Client, LocalCluster
    from distributed import as_completed as dask_completed

    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)  # type: ignore[no-untyped-call]
    try:
        with Client(cluster if cluster is not None else scheduler) as client:  # type: ignore[no-untyped-call]
            futures = {
                client.submit(_grade_one, *arguments, key=f"grade-{entry.label}-{keys[entry]}", pure=False): entry
                for entry, arguments in jobs
            }
            for future in dask_completed(futures):  # type: ignore[no-untyped-call]
                yield futures[future], future.result
    finally:
        if cluster is not None:
            cluster.close()


def cache_key(entry: Entry, course: Course, assignment_name: str | None, options: GradingOptions) -> str:
    digest = hashlib.sha256()
    if not entry.refusal:  # a refused file is never read, not even for its key
        with contextlib.suppress(OSError, AutograderError):
            digest.update(read_regular(entry.path))  # staging's rule: a staged copy, at most the cap
    digest.update(entry.refusal.encode())
    name = entry.assignment or assignment_name
    if name is None and not entry.refusal:
        with contextlib.suppress(AutograderError):
            name = course.recognise(read_submission(entry.path))[0].name
    if name is not None:
        with contextlib.suppress(AutograderError):
            assignment = course.get(name)
            for path in (*assignment.public_checks, *assignment.hidden_checks):
                digest.update(path.read_bytes())
            digest.update(repr(assignment.config).encode())
    digest.update(f"{name}|{options}|{default_store().set_id}|{grader_version()}".encode())
    return digest.hexdigest()[:16]


def _require_distinct_labels(entries: Sequence[Entry]) -> None:
    """Two entries sharing a label would share a result file: never grade so."""
    labels: dict[str, Entry] = {}
    for entry in entries:
        other = labels.setdefault(entry.label, entry)
        if other != entry:
            raise UsageError(f"{other.path} and {entry.path} would share the label {entry.label}: rename one")


def _as_chosen(result: SubmissionResult, entry: Entry) -> SubmissionResult:
    """A stored result says how its assignment was told on this run, not the first."""
    if not entry.chosen_by or result.assignment_chosen_by == entry.chosen_by:
        return result
    return dataclasses.replace(result, assignment_chosen_by=entry.chosen_by)


def result_file(store: Path, label: str, key: str) -> Path:
    """Where the result of the entry `label` graded under `key` is kept."""
    return store / f"{label}.{key}.json"


def _stored(store: Path, entry: Entry, key: str) -> SubmissionResult | None:
    path = result_file(store, entry.label, key)
    try:
        return SubmissionResult.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _follow_parent(parent: int, workers: int) -> None:
    """In each worker: take this worker's share of the cores; if the grader dies
    (even by kill -9), stop too, cleaning up the kernel and sandbox on the way out;
    the unfinished result is simply missing."""
    share_cores(workers)
    start_forkserver()  # warms up (imports torch) while the first submission is read
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    # the grader's terminal gone (closed, or the grader was its session's leader
    # and died): tidy up as for SIGTERM rather than die with sandboxes left behind
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        _PARENT_GONE.set()
        # aimed at the main thread, so that a blocking wait there is interrupted
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
        tear_down_live_sandboxes()  # now, even where the main thread swallows SystemExit (pytest) or is slow
        time.sleep(_CLEANUP_GRACE_S)  # time for the kernel and sandbox to be torn down
        os._exit(143)

    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


def _grade_one(
    path: str,
    entry: Entry,
    course_root: str,
    assignment_name: str | None,
    options: GradingOptions,
    store: str,
    key: str,
) -> str:
    """Runs in a worker process; writes the result itself, so it survives the parent."""
    if _PARENT_GONE.is_set():  # a job already queued when the grader died: no new sandbox for it
        raise SystemExit(143)
    told: list[str] = []
    result = grade_notebook(
        Path(path),
        course=Course(Path(course_root)),
        assignment_name=assignment_name,
        options=options,
        on_assignment=lambda _path, _name, how: told.append(how),
        prediction_folder=folder_for(Path(store).parent),  # shared by the batch's workers, kept for a resume
    )
    chosen_by = entry.chosen_by or (told[0] if told else "")
    result = dataclasses.replace(result, student=entry.name or entry.student, assignment_chosen_by=chosen_by)
    text = result.to_json()
    if _PARENT_GONE.is_set():  # its kernel was killed under it: not a grade, the next run grades it
        raise SystemExit(143)
    _write_result(Path(store), entry.label, key, text)
    return text


def _finished(outcome: JobAnswer, entry: Entry, assignment_name: str | None) -> SubmissionResult:
    try:
        return SubmissionResult.from_json(outcome())
    except Exception as error:  # a worker crash must not stop the batch: it becomes this entry's result
        if isinstance(error, WorkerFailure):
            reason, where = str(error), error.grader_traceback
        else:
            reason, where = f"the grading worker failed: {type(error).__name__}: {error}", traceback.format_exc()
        return ungraded_result(
            entry.path,
            status="error",
            reason=reason,
            assignment=assignment_name,
            student=entry.name or entry.student,
            grader_traceback=where,
            assignment_chosen_by=entry.chosen_by,
        )


def _write_result(store: Path, label: str, key: str, text: str) -> None:
    """Keep a result atomically, and drop the entry's results for older keys."""
    target = result_file(store, label, key)
    for old in store.glob(f"{glob.escape(label)}.*.json"):
        if old != target and old.name.count(".") == label.count(".") + 2:
            old.unlink(missing_ok=True)  # a result for an older key of the same entry
    with tempfile.NamedTemporaryFile("w", dir=target.parent, suffix=".tmp", delete=False, encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, target)
