"""Evaluate one function at a batch of points: serially, on local processes, or on an executor.

The process pool and its modules (``concurrent.futures.process``, ``multiprocessing``) load
only for a parallel batch: a serial solve never needs them, and importing them cost a plain
NumPy solve in a fresh interpreter a few milliseconds.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import pickle
import sys
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..validation import MAX_WORKERS, check_switch

__all__ = ["Evaluator"]

_PAYLOADS: dict[bytes, Callable] = {}


def _dumps(fun: Callable) -> bytes:
    try:
        import cloudpickle
    except ImportError:  # plain pickle works for functions defined at module level
        try:
            return pickle.dumps(fun)
        except Exception as exc:
            raise TypeError(
                f"parallel finite differences send the function to other processes, but it cannot "
                f"be pickled ({exc}). Define it at module level, or install cloudpickle "
                "(pip install cloudpickle), which also sends lambdas and closures."
            ) from None
    return cloudpickle.dumps(fun)


def _evaluate_chunk(payload: bytes, points: list[np.ndarray]) -> list[Any]:
    """Run in a worker process: unpickle the function once per process, evaluate a chunk."""
    key = hashlib.sha1(payload).digest()
    fun = _PAYLOADS.get(key)
    if fun is None:
        _PAYLOADS.clear()
        fun = _PAYLOADS[key] = pickle.loads(payload)
    return _evaluate_chunk_direct(fun, points)


def _evaluate_chunk_direct(fun: Callable, points: list[np.ndarray]) -> list[Any]:
    out = []
    for index, point in enumerate(points):
        try:
            out.append(fun(point))
        except Exception as exc:
            exc.autominimize_index = index
            raise
    return out


class _Tolerant:
    """``fun`` that returns None where it raises (picklable when ``fun`` is)."""

    def __init__(self, fun: Callable) -> None:
        self.fun = fun

    def __call__(self, x: np.ndarray) -> Any:
        try:
            return self.fun(x)
        except Exception:
            return None


def _process_context() -> Any:
    import multiprocessing

    # fork is unsafe once a framework has started threads; forkserver is the fast safe choice.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


class Evaluator:
    """Evaluate one function at a batch of points: serially, on local processes, or on an executor.

    Parameters
    ----------
    workers : int, optional
        Start a pool of this many local processes (on first use; closed by :meth:`close` or at
        the end of a ``with`` block). The function is sent with cloudpickle when installed,
        so lambdas and closures work; scripts must guard their top level with
        ``if __name__ == "__main__":``, as for any process pool.
    executor : concurrent.futures.Executor, optional
        Any executor: ``ThreadPoolExecutor``, ``ProcessPoolExecutor``, or a
        ``dask.distributed`` Client's ``client.get_executor()``. It is not shut down here.
    tolerate_failures : bool
        :meth:`map` gives None for a point where the function raises, instead of raising,
        and :func:`approx_jacobian` retries such points on the other side of x.

    Examples
    --------
    >>> import numpy as np
    >>> with Evaluator() as evaluate:          # serial
    ...     evaluate.map(lambda x: float(x.sum()), [np.ones(2), np.zeros(2)])
    [2.0, 0.0]
    """

    def __init__(self, workers: int | None = None, executor: concurrent.futures.Executor | None = None, tolerate_failures: bool = False) -> None:
        if workers is not None and executor is not None:
            raise ValueError("give workers= (local processes) or executor= (any Executor), not both.")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or not 1 <= workers <= MAX_WORKERS):
            raise ValueError(f"workers must be a positive integer (the number of local processes); got {workers!r}.")
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(
                f"executor must be a concurrent.futures.Executor (with a submit method), such as "
                f"ProcessPoolExecutor or a dask Client's get_executor(); got {type(executor).__name__}."
            )
        self.workers = None if workers is None or workers == 1 else int(workers)
        self.executor = executor
        # a bool costs no call: the evaluator is made for every solve
        self.tolerate_failures = tolerate_failures if type(tolerate_failures) is bool else check_switch(tolerate_failures, "tolerate_failures")
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    @property
    def parallel(self) -> bool:
        return self.workers is not None or self.executor is not None

    def _executor(self) -> concurrent.futures.Executor:
        if self.executor is not None:
            return self.executor
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=_process_context())
        return self._pool

    def map(self, fun: Callable[[np.ndarray], Any], points: Sequence[np.ndarray]) -> list[Any]:
        """``[fun(p) for p in points]``, in parallel when workers or an executor were given.

        An exception raised by ``fun`` propagates with the failing point in
        ``exc.autominimize_point`` (with ``tolerate_failures``, the point gets None instead).
        """
        if not callable(fun) or isinstance(points, (str, bytes)) or not isinstance(points, Iterable):
            what = (
                f"fun must be callable; got {type(fun).__name__}"
                if not callable(fun)
                else f"points must be an iterable of points; got {type(points).__name__}"
            )
            raise TypeError(f"Evaluator.map(fun, points): {what}.")
        points = list(points)
        if self.tolerate_failures:
            fun = _Tolerant(fun)
        if not self.parallel or len(points) <= 1:
            results = []
            for point in points:
                try:
                    results.append(fun(point))
                except Exception as exc:
                    exc.autominimize_point = point
                    raise
            return results
        from concurrent.futures.process import BrokenProcessPool

        executor = self._executor()
        # Our own pool: one chunk per worker. A foreign executor: one task per point, so that
        # it balances the load however many workers it has.
        count = self.workers if self.executor is None else len(points)
        chunks = [list(chunk) for chunk in np.array_split(np.arange(len(points)), min(count, len(points)))]
        if isinstance(executor, concurrent.futures.ProcessPoolExecutor):
            # plain pickle cannot send lambdas or closures; cloudpickle them once per batch
            task, payload = _evaluate_chunk, _dumps(fun)
        else:  # threads share the function; dask pickles it with cloudpickle itself
            task, payload = _evaluate_chunk_direct, fun
        futures = [executor.submit(task, payload, [points[i] for i in chunk]) for chunk in chunks]
        results: list[Any] = []
        for chunk, future in zip(chunks, futures):
            try:
                results.extend(future.result())
            except BrokenProcessPool as exc:
                for other in futures:
                    other.cancel()
                raise RuntimeError(
                    "workers=: the worker processes ended before answering. A script that uses workers= "
                    'must guard its top level with `if __name__ == "__main__":`, since every worker imports '
                    "the main module; a worker that crashed or ran out of memory also ends them."
                ) from exc
            except Exception as exc:
                exc.autominimize_point = points[chunk[getattr(exc, "autominimize_index", 0)]]
                for other in futures:
                    other.cancel()
                raise
        return results

    def close(self) -> None:
        """Shut down the process pool this evaluator started (a given executor is left open)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "Evaluator":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getstate__(self) -> dict:
        raise TypeError("an Evaluator holds a process pool and cannot be pickled.")
