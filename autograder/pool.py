"""A pool of worker processes where a worker's death costs only its own job.

`concurrent.futures.ProcessPoolExecutor` breaks as a whole when one worker
dies (the out-of-memory killer, a crash in native code, `os._exit`): every job
queued or running then fails with `BrokenProcessPool`, so one submission gave
its classmates `error`. Here each worker holds one job at a time, so the pool
knows which job a dead worker had: that job is retried once on a fresh worker,
and given up (`WorkerFailure`) if it kills that one too; the other jobs never
notice. A job's answer comes back as JSON bytes: the parent unpickles nothing.
"""

from __future__ import annotations

import collections
import contextlib
import json
import multiprocessing
import signal
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from autograder.errors import AutograderError

Key = TypeVar("Key")
JobAnswer = Callable[[], str]  # returns the job's answer, or raises `WorkerFailure`
_STOP_GRACE_S = 20.0  # for a worker told to stop to tear down its kernel and sandbox


class WorkerFailure(AutograderError, ChildProcessError):
    """A job raised in its worker, or its worker died; `grader_traceback` says
    where, for the instructor."""

    def __init__(self, message: str, grader_traceback: str = "") -> None:
        self.grader_traceback = grader_traceback
        super().__init__(message)

    @classmethod
    def died(cls, exitcode: int | None, attempts: int) -> WorkerFailure:
        if exitcode is not None and exitcode < 0:
            how = f"was killed by {signal.Signals(-exitcode).name}"
            if -exitcode == signal.SIGKILL:
                how += " (as the out-of-memory killer does)"
        else:
            how = f"exited with status {exitcode}"
        tries = "each of the 2 times it was tried" if attempts > 1 else "while running it"
        return cls(f"the grading worker {how} {tries}; the other submissions were not affected")


@dataclass
class _Worker:
    process: BaseProcess
    connection: Connection
    job: int | None = None  # the index of the job it is running


def run_jobs(
    function: Callable[..., str],
    jobs: Sequence[tuple[Key, tuple[Any, ...]]],
    *,
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...] = (),
    retries: int = 1,
) -> Iterator[tuple[Key, JobAnswer]]:
    """Run `function(*arguments)` for each `(key, arguments)` in fresh spawned
    processes, at most `workers` at once; yield `(key, outcome)` as each ends.

    `function` and `initializer` must be importable module-level functions.
    A job whose worker dies is run again, up to `retries` times.
    """
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads or kernels
    pending = collections.deque(range(len(jobs)))
    deaths: collections.Counter[int] = collections.Counter()
    pool: list[_Worker] = []
    try:
        while pending or any(worker.job is not None for worker in pool):
            idle = [worker for worker in pool if worker.job is None]
            while pending and len(pool) < workers and len(idle) < len(pending):
                ours, theirs = context.Pipe()
                process = context.Process(
                    target=_serve, args=(theirs, function, initializer, initargs), name="autograder-worker"
                )
                process.start()
                theirs.close()
                idle.append(_Worker(process, ours))
                pool.append(idle[-1])
            for worker in idle:
                if pending:
                    job = pending.popleft()
                    try:
                        worker.connection.send(jobs[job][1])  # the trusted parent's arguments
                        worker.job = job
                    except OSError:  # it died idle: the job waits for the next worker
                        pending.appendleft(job)
            ready = wait([worker.connection for worker in pool] + [worker.process.sentinel for worker in pool])
            for worker in list(pool):
                answer = _answer(worker) if worker.connection in ready else None
                if answer is not None and worker.job is not None:
                    yield jobs[worker.job][0], _outcome(answer)
                    worker.job = None
                elif worker.connection in ready or worker.process.sentinel in ready:
                    pool.remove(worker)  # it died (its pipe closed): its job, if any, alone is lost
                    worker.process.join()
                    worker.connection.close()
                    if worker.job is None:
                        continue
                    deaths[worker.job] += 1
                    if deaths[worker.job] <= retries:
                        pending.append(worker.job)
                    else:
                        failure = WorkerFailure.died(worker.process.exitcode, deaths[worker.job])
                        yield jobs[worker.job][0], _raiser(failure)
    finally:
        _stop(pool)


def _answer(worker: _Worker) -> dict[str, Any] | None:
    try:
        answer = json.loads(worker.connection.recv_bytes())
    except (EOFError, OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _outcome(answer: dict[str, Any]) -> JobAnswer:
    if isinstance(answer.get("ok"), str):
        text: str = answer["ok"]
        return lambda: text
    message = f"the grading worker failed: {answer.get('raised')}"
    return _raiser(WorkerFailure(message, str(answer.get("traceback", ""))))


def _raiser(failure: WorkerFailure) -> JobAnswer:
    def outcome() -> str:
        raise failure

    return outcome


def _stop(pool: list[_Worker]) -> None:
    """Idle workers are told to stop; busy ones (the batch was interrupted) get
    SIGTERM, which tears down their kernel and sandbox; any still there after
    the grace period is killed."""
    for worker in pool:
        if worker.job is None:
            with contextlib.suppress(OSError):
                worker.connection.send(None)
        else:
            worker.process.terminate()
    for worker in pool:
        worker.process.join(_STOP_GRACE_S)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.connection.close()


def _serve(
    connection: Connection, function: Callable[..., str], initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> None:
    """A worker's life: set up once, then run one job at a time until told to stop."""
    initializer(*initargs)
    while True:
        try:
            arguments = connection.recv()
        except EOFError:  # the parent is gone
            return
        if arguments is None:
            return
        try:
            answer = {"ok": function(*arguments)}
        except Exception as error:  # the job's failure is its answer; the worker goes on
            answer = {"raised": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        connection.send_bytes(json.dumps(answer).encode())
