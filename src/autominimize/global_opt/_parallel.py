"""Evaluating many points in other processes: ``workers=N`` or any executor (Dask included).

scipy's population methods take a map-like ``workers(func, points)``. :class:`ChunkedMap`
is one over a ``concurrent.futures.Executor`` that sends one chunk of points per worker (a
task per point costs more than a cheap objective), and counts the evaluations. The function
sent is a :class:`RemoteValue`, which carries the user's function and compiles it in the
process that evaluates it.
"""

from __future__ import annotations

import concurrent.futures
import math
import contextlib
import multiprocessing
import os
import pickle
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..backends.base import as_flat_float64
from ..params import ParamSpec
from ..validation import check_workers

__all__ = ["RemoteValue", "ChunkedMap", "point_map"]


class RemoteValue:
    """``fun`` at one flat point, picklable when ``fun`` and its ``args`` are; under
    ``error_handling='continue'`` a failure or a non-finite value is +inf."""

    def __init__(self, fun: Callable, unpack: str, args: tuple, keys: Any, spec: ParamSpec, backend: str, dtype: str, error_handling: str = "raise"):
        self.fun = fun
        self.unpack = unpack
        self.args = args
        self.keys = keys
        self.spec = spec
        self.backend = backend
        self.dtype = dtype
        self.error_handling = error_handling
        self._compiled: Any = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_compiled"] = None  # compiled functions stay in their process
        return state

    def __call__(self, x: Any) -> float:
        from .. import backends
        from ..calling import make_caller

        backend = backends.get_backend(self.backend)
        if self._compiled is None:
            call = make_caller(self.fun, self.unpack, self.args, self.keys)
            self._compiled = backend.compile_scalar(call, self.spec, self.dtype)
        evaluate = getattr(self._compiled, "value_without_gradient", self._compiled.value)
        with backend.solve_context(self.dtype):
            if self.error_handling == "raise":
                return float(evaluate(as_flat_float64(x)))
            try:
                value = float(evaluate(as_flat_float64(x)))
            except Exception:
                return math.inf
        return value if math.isfinite(value) else math.inf


def _evaluate_all(func: Callable, points: list) -> list:
    return [func(x) for x in points]


class ChunkedMap:
    """``map(func, points)`` on an executor, one chunk of points per worker, counted."""

    def __init__(self, executor: concurrent.futures.Executor, chunks: int, count: Callable[[int], None]):
        self.executor = executor
        self.chunks = max(1, int(chunks))
        self.count = count

    def __call__(self, func: Callable, iterable: Iterable) -> list:
        points = list(iterable)
        if not points:
            return []
        self.count(len(points))
        parts = [part.tolist() for part in np.array_split(np.arange(len(points)), min(self.chunks, len(points)))]
        results = self.executor.map(_evaluate_all, [func] * len(parts), [[points[i] for i in part] for part in parts])
        return [value for part in results for value in part]


class _CountingMap:
    """A user's map-like ``workers`` callable, with its evaluations counted."""

    def __init__(self, map_like: Callable, count: Callable[[int], None]):
        self.map_like = map_like
        self.count = count

    def __call__(self, func: Callable, iterable: Iterable) -> list:
        points = list(iterable)
        self.count(len(points))
        return list(self.map_like(func, points))


def _as_executor(executor: Any) -> concurrent.futures.Executor:
    if isinstance(executor, concurrent.futures.Executor):
        return executor
    if callable(getattr(executor, "get_executor", None)):  # a dask.distributed Client
        return executor.get_executor()
    raise TypeError(
        "executor must be a concurrent.futures.Executor (ProcessPoolExecutor, "
        "ThreadPoolExecutor, a Dask client's get_executor(), ...) or a dask.distributed "
        f"Client; got {type(executor).__name__}."
    )


def _worker_count(executor: concurrent.futures.Executor) -> int:
    count = getattr(executor, "_max_workers", None)
    client = getattr(executor, "_client", None)
    if count is None and client is not None:
        count = sum(client.nthreads().values())
    return int(count or os.cpu_count() or 1)


@contextlib.contextmanager
def point_map(remote: Callable | None, workers: Any, executor: Any, count: Callable[[int], None]) -> Iterator[Callable]:
    """The map-like callable for scipy's ``workers`` from ``workers=`` or ``executor=``.

    ``workers`` is a number of local processes (-1: one per CPU), started with 'spawn' so
    that no framework's threads are forked, or a map-like callable; ``executor`` any
    ``concurrent.futures.Executor`` or Dask client, which the caller keeps running.
    """
    if remote is None:
        raise ValueError(
            "workers/executor evaluate the objective in other processes, which a closure over "
            "a model's parameters cannot reach; evaluate in this process (workers=1)."
        )
    if executor is not None:
        if workers not in (1, None):
            raise ValueError(f"give workers= or executor=, not both (got workers={workers!r}).")
        pool = _as_executor(executor)
        yield ChunkedMap(pool, _worker_count(pool), count)
        return
    if callable(workers):
        yield _CountingMap(workers, count)
        return
    check_workers(workers)
    processes = (os.cpu_count() or 1) if workers == -1 else int(workers)
    try:
        pickle.dumps(remote)
    except Exception as exc:
        raise TypeError(
            f"workers={workers} evaluates fun in other processes, so fun and args must be "
            f"picklable (defined at module level, not a lambda or a nested function): {exc}. "
            "Pass executor= with a Dask client (which uses cloudpickle), or batch instead "
            "(vectorized=True)."
        ) from None
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield ChunkedMap(pool, processes, count)
