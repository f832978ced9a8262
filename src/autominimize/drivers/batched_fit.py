"""The driver of batched fits: solve a batch in one piece, in chunks, or in chunks on an executor.

A chunk is solved by one vectorised Levenberg–Marquardt
(:class:`~autominimize.native.batched_lm.BatchedLM`) over its members' rows. With an
executor (any ``concurrent.futures.Executor`` or a ``dask.distributed.Client``) each chunk is
one task; a chunk whose task raises is submitted once more, and if it fails again its members
are reported as failed (reason :data:`CHUNK_FAILED`) while the other chunks keep their results.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backends as _backends
from .batched_members import MemberProblem, evaluator, framework_array, like, to_numpy

__all__ = ["CHUNK_FAILED", "solve_batch", "solve_chunk"]

#: the code of a member whose chunk failed twice on the executor (status -2)
CHUNK_FAILED = 7


def solve_chunk(problem: MemberProblem, rows: np.ndarray, member_data: tuple, shared_data: tuple = ()) -> dict:
    """Solve the members ``rows`` (b, n); ``member_data`` has one row per member, ``shared_data``
    is the same for all (broadcast here, so it travels to a worker once)."""
    count = rows.shape[0]
    data = tuple(member_data) + tuple(np.broadcast_to(d, (count,) + np.shape(d)) for d in shared_data)
    backend = _backends.get_backend(problem.backend)
    with backend.solve_context(problem.precision):
        x = framework_array(problem.backend, rows, problem.precision)
        framework_data = tuple(framework_array(problem.backend, d, problem.precision) for d in data)
        lower = None if problem.lower is None else like(x, problem.lower)
        upper = None if problem.upper is None else like(x, problem.upper)
        evaluate = evaluator(problem)
        state = problem.algo.run(x, evaluate, framework_data, lower, upper)
        return {
            "x": to_numpy(state.x),
            "cost": to_numpy(state.cost),
            "fun": to_numpy(state.r),
            "jac": to_numpy(state.J),
            "grad": to_numpy(state.g),
            "nfev": to_numpy(state.nfev).astype(int),
            "reason": to_numpy(state.reason).astype(int),
            "errors": [None] * count,
        }


def solve_batch(problem: MemberProblem, rows: np.ndarray, member_data: tuple, shared_data: tuple, executor: Any, chunk_size: int | None) -> dict:
    """The whole batch: in one piece, in chunks one after the other, or in chunks on ``executor``."""
    count = rows.shape[0]
    if chunk_size is None:
        if executor is None:
            return solve_chunk(problem, rows, member_data, shared_data)
        chunk_size = math.ceil(count / (2 * _worker_count(executor)))
    starts = list(range(0, count, chunk_size))
    pieces = [(rows[a : a + chunk_size], tuple(d[a : a + chunk_size] for d in member_data)) for a in starts]
    if executor is None:
        outputs = [solve_chunk(problem, chunk, data, shared_data) for chunk, data in pieces]
    else:
        outputs = _on_executor(executor, problem, pieces, shared_data)
    solved = [out for out in outputs if out["fun"] is not None]
    m = solved[0]["fun"].shape[1] if solved else 0
    for out in outputs:  # a failed chunk's residuals and Jacobian are unknown: NaN
        if out["fun"] is None:
            out["fun"] = np.full((out["x"].shape[0], m), np.nan)
            out["jac"] = np.full(out["x"].shape + (m,), np.nan).swapaxes(1, 2)
    merged = {key: np.concatenate([out[key] for out in outputs]) for key in outputs[0] if key != "errors"}
    merged["errors"] = [error for out in outputs for error in out["errors"]]
    return merged


def _worker_count(executor: Any) -> int:
    if callable(getattr(executor, "scheduler_info", None)):  # a dask.distributed Client
        return max(1, sum(w.get("nthreads", 1) for w in executor.scheduler_info().get("workers", {}).values()))
    return max(1, int(getattr(executor, "_max_workers", 1) or 1))


def _on_executor(executor: Any, problem: MemberProblem, pieces: list, shared_data: tuple) -> list[dict]:
    """Each chunk as one task; a failed chunk is retried once, then reported per member."""
    dask = callable(getattr(executor, "scatter", None)) and callable(getattr(executor, "submit", None))
    if not dask and not callable(getattr(executor, "submit", None)):
        raise TypeError(
            "executor must be a concurrent.futures.Executor (ProcessPoolExecutor, ThreadPoolExecutor, ...) "
            f"or a dask.distributed Client; got {type(executor).__name__}."
        )
    if dask:
        shared = executor.scatter(shared_data, broadcast=True) if shared_data else ()
        payloads: dict[int, Any] = {}

        def submit(i: int) -> Any:  # pure=False: a retry must run again, not reuse the failed key
            if i not in payloads:  # each piece sent just before its task: the first tasks run while later pieces travel
                payloads[i] = executor.scatter(pieces[i])
            return executor.submit(_solve_piece, problem, payloads[i], shared, pure=False)
    else:

        def submit(i: int) -> Any:
            return executor.submit(_solve_piece, problem, pieces[i], shared_data)

    futures = [submit(i) for i in range(len(pieces))]
    outputs: list[Any] = [None] * len(pieces)
    failed = []
    for i, future in enumerate(futures):
        try:
            outputs[i] = future.result()
        except Exception:
            failed.append(i)
    retries = {i: submit(i) for i in failed}
    for i, future in retries.items():
        try:
            outputs[i] = future.result()
        except Exception as exc:
            outputs[i] = _failed_chunk(pieces[i][0], exc)
    return outputs


def _solve_piece(problem: MemberProblem, piece: tuple, shared_data: tuple) -> dict:
    return solve_chunk(problem, piece[0], piece[1], tuple(shared_data))


def _failed_chunk(rows: np.ndarray, exc: BaseException) -> dict:
    count, n = rows.shape
    message = f"its chunk failed twice on the executor: {type(exc).__name__}: {exc}"
    return {
        "x": rows.astype(np.float64),
        "cost": np.full(count, np.nan),
        "fun": None,
        "jac": None,
        "grad": np.full((count, n), np.nan),
        "nfev": np.zeros(count, int),
        "reason": np.full(count, CHUNK_FAILED),
        "errors": [message] * count,
    }
