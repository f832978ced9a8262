"""The driver of batched fits: solve a batch in one piece, in chunks, or in chunks on an executor.

A chunk is solved by one vectorised Levenberg–Marquardt
(:class:`~autominimize.native.batched_lm.BatchedLM`) over its members' rows. With an
executor (any ``concurrent.futures.Executor`` or a ``dask.distributed.Client``) each chunk is
one task, at most two per worker thread in flight (the next submitted as one completes, all
at once when the executor does not tell its workers); a chunk whose task raises is submitted once more, and if it fails again its members
are reported as failed (reason :data:`CHUNK_FAILED`) while the other chunks keep their results.
Each chunk's results are written into the batch's arrays as the chunk arrives, so that after the
last chunk the client only copies that chunk's rows; what else is computed per member
(``finish``: the curve fits' covariances) runs in the chunk's task. Without
``keep_residuals`` a chunk's residuals and Jacobians (:data:`PER_POINT`) are dropped in its
task, after ``finish``, and never travel back.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import itertools
import math
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from .. import backends as _backends
from .batched_members import MemberProblem, evaluator, framework_array, like, to_numpy

__all__ = ["CHUNK_BYTES", "CHUNK_FAILED", "PER_POINT", "default_chunk_size", "solve_batch", "solve_chunk"]

#: the code of a member whose chunk failed twice on the executor (status -2)
CHUNK_FAILED = 7

#: the per-point arrays of a chunk's result: B·m·(n + 1) numbers, 97% of what travels back
#: for fits of 50 points and 3 parameters
PER_POINT = ("fun", "jac")

#: the default size of a chunk on an executor, in bytes of its residuals and Jacobian
#: (8·m·(n + 1) a member): 12 500 fits of 50 points and 3 parameters, the size that gave the
#: most fits per second on one worker and on two of those tried (3 125 to 50 000, on a 2-core
#: machine whose workers share a 32 MB cache; docs/performance.md)
CHUNK_BYTES = 20_000_000

#: ``finish(out, member_data) -> dict``: more per-member arrays from a solved chunk's ``out``
Finish = Callable[[dict, tuple], dict]


def solve_chunk(
    problem: MemberProblem, rows: np.ndarray, member_data: tuple, shared_data: tuple = (), finish: Finish | None = None, keep_residuals: bool = True
) -> dict:
    """Solve the members ``rows`` (b, n); ``member_data`` has one row per member, ``shared_data``
    is the same for all (broadcast here, so it travels to a worker once). ``finish`` adds its
    arrays to the result; without ``keep_residuals`` the :data:`PER_POINT` arrays are left out."""
    count = rows.shape[0]
    data = tuple(member_data) + tuple(np.broadcast_to(d, (count,) + np.shape(d)) for d in shared_data)
    backend = _backends.get_backend(problem.backend)
    with backend.solve_context(problem.precision):
        x = framework_array(problem.backend, rows, problem.precision)
        framework_data = tuple(framework_array(problem.backend, d, problem.precision) for d in data)
        lower = None if problem.lower is None else like(x, problem.lower)
        upper = None if problem.upper is None else like(x, problem.upper)
        evaluate = evaluator(problem)
        state = problem.algo.run(x, evaluate, framework_data, lower, upper, row_by_row=problem.backend == "numpy" and not problem.vectorized)
        out = {
            "x": to_numpy(state.x),
            "cost": to_numpy(state.cost),
            "fun": to_numpy(state.r),
            "jac": to_numpy(state.J),
            "grad": to_numpy(state.g),
            "nfev": to_numpy(state.nfev).astype(int),
            "reason": to_numpy(state.reason).astype(int),
        }
    return _kept(out if finish is None else out | finish(out, tuple(member_data)), keep_residuals)


def _kept(out: dict, keep_residuals: bool) -> dict:
    return out if keep_residuals else {key: value for key, value in out.items() if key not in PER_POINT}


def solve_batch(
    problem: MemberProblem,
    rows: np.ndarray,
    member_data: tuple,
    shared_data: tuple,
    executor: Any,
    chunk_size: int | None,
    finish: Finish | None = None,
    keep_residuals: bool = True,
    points: int = 1,
) -> dict:
    """The whole batch: in one piece, in chunks one after the other, or in chunks on ``executor``
    (by default of :func:`default_chunk_size` members; ``points``: the residuals of a member).

    Returns the arrays of :func:`solve_chunk` for every member, and ``errors``: the message of
    each failed chunk by its (start, stop) rows."""
    run = _ChunkTask(problem, shared_data, finish, keep_residuals)
    count = rows.shape[0]
    if chunk_size is None:
        chunk_size = count if executor is None else default_chunk_size(count, rows.shape[1], points, max(1, _worker_count(executor) or 1))
    bounds = [(a, min(a + chunk_size, count)) for a in range(0, max(count, 1), max(chunk_size, 1))]
    pieces = [(rows[a:b], tuple(d[a:b] for d in member_data)) for a, b in bounds]
    if len(pieces) == 1 and executor is None:  # one piece: its arrays are the batch's, no copy
        with _latest_kept(rows, bounds, None):
            return run(pieces[0]) | {"errors": {}}
    assembly = _Assembly(count, bounds)
    with _latest_kept(rows, bounds, assembly):
        if executor is None:
            for i, piece in enumerate(pieces):
                assembly.running = i
                assembly.put(i, run(piece))
        else:
            _on_executor(executor, run, pieces, assembly)
    return assembly.finished(pieces, run)


def default_chunk_size(count: int, n: int, points: int, workers: int) -> int:
    """Members per chunk on an executor: as many as keep a chunk's residuals and Jacobian
    (``points`` residuals and ``n`` parameters a member) within :data:`CHUNK_BYTES`, and no
    more than give two chunks per worker thread."""
    fits_in_budget = CHUNK_BYTES // (8 * max(points, 1) * (n + 1))
    return max(1, min(math.ceil(count / (2 * workers)), fits_in_budget))


@contextlib.contextmanager
def _latest_kept(rows: np.ndarray, bounds: list, assembly: _Assembly | None) -> Iterator[None]:
    """A Ctrl-C or an exception (the user's fun failing) propagates with every member's latest point and cost in
    ``exc.autominimize_rows`` (x (B, n), cost (B,)): the solved chunks' results, the
    interrupted chunk's latest accepted rows (when it runs in this process), and the starts
    (cost NaN) of the others."""
    try:
        yield
    except BaseException as exc:
        x, cost = rows.astype(np.float64), np.full(rows.shape[0], np.nan)
        done = assembly.done if assembly is not None else set()
        for i in done:
            a, b = bounds[i]
            x[a:b], cost[a:b] = assembly.out["x"][a:b], assembly.out["cost"][a:b]
        running = 0 if assembly is None else assembly.running
        latest = getattr(exc, "autominimize_rows", None)
        if latest is not None and running is not None and running not in done:
            a, b = bounds[running]
            x[a:b], cost[a:b] = latest.x, latest.cost
        exc.autominimize_rows = (x, cost)
        raise


@dataclass(frozen=True)
class _ChunkTask:
    """What solves one piece (rows, member data), here or in an executor's task: picklable."""

    problem: MemberProblem
    shared_data: tuple
    finish: Finish | None
    keep_residuals: bool

    def __call__(self, piece: tuple, shared_data: tuple | None = None) -> dict:
        shared = self.shared_data if shared_data is None else tuple(shared_data)
        return solve_chunk(self.problem, piece[0], piece[1], shared, self.finish, self.keep_residuals)

    def failed(self, rows: np.ndarray, member_data: tuple, m: int, exc: BaseException) -> dict:
        """The arrays of a chunk that failed twice (residuals and Jacobian unknown: NaN)."""
        chunk = _failed_chunk(rows, m, exc)
        error = chunk.pop("error")
        return _kept(chunk if self.finish is None else chunk | self.finish(chunk, member_data), self.keep_residuals) | {"error": error}


class _Assembly:
    """The batch's arrays, allocated when the first chunk arrives; each chunk is copied into its
    rows as it arrives, which replaces a join of all chunks after the last (0.76 s per 10⁵
    fits of 50 points, measured, in the client while the workers idle)."""

    def __init__(self, count: int, bounds: list) -> None:
        self.count, self.bounds = count, bounds
        self.out: dict | None = None
        self.failed: dict[int, BaseException] = {}
        self.done: set[int] = set()
        self.running: int | None = None  # the chunk solving in this process, if any

    def put(self, i: int, chunk: dict) -> None:
        if self.out is None:
            self.out = {key: np.empty((self.count,) + value.shape[1:], value.dtype) for key, value in chunk.items()}
        a, b = self.bounds[i]
        for key, value in chunk.items():
            self.out[key][a:b] = value
        self.done.add(i)

    def fail(self, i: int, exc: BaseException) -> None:
        self.failed[i] = exc

    def finished(self, pieces: list, run: _ChunkTask) -> dict:
        """The arrays, with the failed chunks' rows filled in, and their messages."""
        errors = {}
        for i, exc in sorted(self.failed.items()):
            m = self.out["fun"].shape[1] if self.out is not None and "fun" in self.out else 0
            chunk = run.failed(pieces[i][0], pieces[i][1], m, exc)
            errors[self.bounds[i]] = chunk.pop("error")
            self.put(i, chunk)
        assert self.out is not None
        return self.out | {"errors": errors}


def _worker_count(executor: Any) -> int | None:
    """The executor's worker threads now (a Dask cluster may grow), None when it does not say."""
    if callable(getattr(executor, "nthreads", None)):  # a dask.distributed Client: {worker: threads}, 0.4 ms a call
        return sum(executor.nthreads().values())
    workers = getattr(executor, "_max_workers", None)
    return int(workers) if workers else None


def _on_executor(executor: Any, run: _ChunkTask, pieces: list, assembly: _Assembly) -> None:
    """Each chunk as one task, put into ``assembly`` as it completes; a failed chunk is submitted
    again at once, and if it fails again reported per member."""
    dask = callable(getattr(executor, "scatter", None)) and callable(getattr(executor, "submit", None))
    if not dask and not callable(getattr(executor, "submit", None)):
        raise TypeError(
            "executor must be a concurrent.futures.Executor (ProcessPoolExecutor, ThreadPoolExecutor, ...) "
            f"or a dask.distributed Client; got {type(executor).__name__}."
        )
    payloads: dict[int, Any] = {}
    if dask:
        # hash=False: keys named by content would be shared with an earlier batch's equal data,
        # whose release as that batch ends cancels this batch's tasks ("lost dependencies")
        shared = executor.scatter(run.shared_data, broadcast=True, hash=False) if run.shared_data else ()
        task = dataclasses.replace(run, shared_data=())  # the shared data travels scattered, once

        def submit(i: int) -> Any:
            if i not in payloads:  # each piece sent just before its task: the first tasks run while later pieces travel
                payloads[i] = executor.scatter(pieces[i], hash=False)
            # a key of our own, new for a retry: Dask would name the task by str(task), a repr of
            # the whole problem (1 ms a task, measured)
            return executor.submit(task, payloads[i], shared, key=f"autominimize-chunk-{i}-{uuid.uuid4().hex}")
    else:

        def submit(i: int) -> Any:
            return executor.submit(run, pieces[i])

    def window() -> int:  # two tasks per worker thread, at least two; all when the executor does not say
        workers = _worker_count(executor)
        return len(pieces) if workers is None else 2 * max(workers, 1)

    _collect(submit, len(pieces), window, payloads, assembly)


def _collect(submit: Callable[[int], Any], count: int, window: Callable[[], int], payloads: dict, assembly: _Assembly) -> None:
    """Each chunk's results into ``assembly`` as its task completes, with at most ``window()``
    tasks in flight: the next chunk is submitted as one completes, so that the workers hold
    only the pieces they solve or will solve next (measured: with all 80 pieces of 10⁶ fits,
    400 MB, sent at once, one worker took 28.6 s, against 22.5 s at its rate for 4·10⁵).
    A failed task is submitted once more, and if it fails again its chunk is reported failed.
    A Ctrl-C cancels the tasks in flight."""
    index: dict[Any, int] = {}
    arrivals = _Arrivals()
    upcoming = iter(range(count))

    def launch(i: int) -> None:
        future = submit(i)
        index[future] = i
        arrivals.add(future)

    def fill() -> None:
        for i in itertools.islice(upcoming, max(window() - len(index), 0)):
            launch(i)

    try:
        fill()
        retried = set()
        for future in arrivals:
            i = index.pop(future)
            try:
                chunk = future.result()
            except Exception as exc:
                if i not in retried:
                    retried.add(i)
                    launch(i)
                    continue
                assembly.fail(i, exc)
            else:
                del future
                payloads.pop(i, None)  # the piece is no longer needed on the workers
                assembly.put(i, chunk)
            fill()
    except KeyboardInterrupt:
        for future in index:  # the tasks not yet run are not run
            future.cancel()
        raise


class _Arrivals:
    """Futures in the order they complete, more added on the way: Dask's ``as_completed``, or
    ``concurrent.futures.wait`` for the futures of a ``concurrent.futures.Executor`` (those
    done together in the order they were added)."""

    def __init__(self) -> None:
        self.pending: list = []
        self.dask: Any = None

    def add(self, future: Any) -> None:
        if self.dask is None and not isinstance(future, concurrent.futures.Future):
            from distributed import as_completed

            self.dask = as_completed()
        if self.dask is None:
            self.pending.append(future)
        else:
            self.dask.add(future)

    def __iter__(self) -> Any:
        if self.dask is not None:
            yield from self.dask
            return
        while self.pending:
            done, _ = concurrent.futures.wait(self.pending, return_when=concurrent.futures.FIRST_COMPLETED)
            arrived = [future for future in self.pending if future in done]
            self.pending = [future for future in self.pending if future not in done]
            yield from arrived


def _failed_chunk(rows: np.ndarray, m: int, exc: BaseException) -> dict:
    count, n = rows.shape
    return {
        "x": rows.astype(np.float64),
        "cost": np.full(count, np.nan),
        "fun": np.full((count, m), np.nan),
        "jac": np.full((count, m, n), np.nan),
        "grad": np.full((count, n), np.nan),
        "nfev": np.zeros(count, int),
        "reason": np.full(count, CHUNK_FAILED),
        "error": f"its chunk failed twice on the executor: {type(exc).__name__}: {exc}",
    }
