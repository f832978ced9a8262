"""Finite differences: forward, backward and central, bound-aware, evaluated in parallel.

Steps are relative to the size of each coordinate, ``h_i = rel_step * max(1, |x_i|)``, with
``rel_step = sqrt(eps)`` for one-sided differences (error O(h) + O(eps/h), balanced at
sqrt(eps)) and ``eps**(1/3)`` for central ones (error O(h**2) + O(eps/h)); see Nocedal &
Wright, *Numerical Optimization*, 2nd ed., section 8.1. Each step is rounded so that
``x + h`` is exactly representable.

Near a bound a step that would leave the box switches side; a central difference that does
not fit becomes the second-order one-sided formula ``(-3 f(x) + 4 f(x+h) - f(x+2h)) / 2h``,
and where even one step does not fit on either side, the step shrinks to the room there is.
The function is therefore never evaluated outside ``bounds``. A fixed variable (lower bound
equal to upper bound) is not stepped: its derivative is zero, as a solver never moves it.

With ``Evaluator(tolerate_failures=True)`` (``error_handling='continue'`` in the solvers), a
difference point where the function raises or is not finite is replaced by the mirrored
point on the other side of x (a one-sided difference there); a coordinate where both sides
fail gets a NaN derivative, which the solver's error policy then handles.

All points of one derivative are evaluated as one batch: serially, on ``workers`` local
processes, or on any ``concurrent.futures.Executor`` (a ``dask.distributed`` Client's
``get_executor()`` included), so the n + 1 evaluations of a forward-difference gradient run
at once.

>>> import numpy as np
>>> from autominimize import numdiff
>>> g = numdiff.gradient(lambda x: (x ** 2).sum(), np.array([1.0, 2.0]), method="central")
>>> np.round(g, 6).tolist()
[2.0, 4.0]
"""

from __future__ import annotations

import concurrent.futures
from concurrent.futures.process import BrokenProcessPool
import hashlib
import multiprocessing
import pickle
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .params import ParamSpec, leaf_to_numpy

__all__ = [
    "METHODS",
    "gradient",
    "jacobian",
    "default_rel_step",
    "Evaluator",
    "approx_jacobian",
    "difference_plan",
]

#: difference schemes; scipy's names '2-point' and '3-point' are accepted as aliases
METHODS = ("forward", "backward", "central")
_ALIASES = {"2-point": "forward", "3-point": "central"}
_EPS = np.finfo(np.float64).eps


def canonical_method(method: str) -> str:
    """'forward', 'backward' or 'central' for a method name or scipy alias."""
    name = _ALIASES.get(method, method) if isinstance(method, str) else method
    if name not in METHODS:
        raise ValueError(
            f"method={method!r} is not a finite-difference scheme; use one of {METHODS} "
            "(or scipy's '2-point' = 'forward', '3-point' = 'central')."
        )
    return name


def default_rel_step(method: str) -> float:
    """sqrt(eps) for one-sided differences, eps**(1/3) for central ones."""
    return _EPS ** (1 / 3) if canonical_method(method) == "central" else _EPS**0.5


# -- the plan: which points, and how to combine them ------------------------------------
@dataclass(frozen=True)
class Plan:
    """Per coordinate: the signed step ``h`` and the formula used.

    ``kind[i]`` is 0 (one-sided, first order: ``(f(x+h) - f(x)) / h``), 1 (central:
    ``(f(x+h) - f(x-h)) / 2h``), 2 (one-sided, second order:
    ``(-3 f(x) + 4 f(x+h) - f(x+2h)) / 2h``) or 3 (a fixed variable, lower bound = upper
    bound: no step, a zero derivative, as the method never moves it); ``h`` carries the side.
    """

    h: np.ndarray
    kind: np.ndarray

    @property
    def needs_f0(self) -> bool:
        return bool(np.any(self.kind != 1))

    def points(self, x: np.ndarray) -> list[np.ndarray]:
        """The points to evaluate, in a fixed order, without ``x`` itself."""
        out = []
        for i, (h, kind) in enumerate(zip(self.h, self.kind)):
            offsets = {0: (h,), 1: (h, -h), 2: (h, 2 * h), 3: ()}[int(kind)]
            for offset in offsets:
                point = x.copy()
                point[i] = x[i] + offset
                out.append(point)
        return out

    def combine(self, f0: np.ndarray | None, values: Sequence[np.ndarray]) -> np.ndarray:
        """The (m, n) Jacobian from the values at :meth:`points`."""
        columns = []
        cursor = 0
        for h, kind in zip(self.h, self.kind):
            if kind == 0:
                columns.append((values[cursor] - f0) / h)
                cursor += 1
            elif kind == 1:
                columns.append((values[cursor] - values[cursor + 1]) / (2 * h))
                cursor += 2
            elif kind == 3:
                columns.append(np.zeros_like(f0))
            else:
                columns.append((-3 * f0 + 4 * values[cursor] - values[cursor + 1]) / (2 * h))
                cursor += 2
        return np.stack(columns, axis=-1)


def difference_plan(
    x: np.ndarray,
    method: str = "forward",
    rel_step: float | np.ndarray | None = None,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> Plan:
    """Choose the step and formula for every coordinate of ``x`` (see the module docstring)."""
    method = canonical_method(method)
    x = np.asarray(x, dtype=np.float64)
    rel = default_rel_step(method) if rel_step is None else np.asarray(rel_step, dtype=np.float64)
    if np.any(np.asarray(rel) <= 0):
        raise ValueError(f"rel_step must be positive; got {rel_step!r}.")
    size = rel * np.maximum(1.0, np.abs(x))
    sign = -1.0 if method == "backward" else 1.0
    h = sign * np.broadcast_to(size, x.shape).astype(np.float64)
    h = (x + h) - x  # exactly representable steps
    kind = np.full(x.shape, 1 if method == "central" else 0, dtype=np.int8)
    if bounds is None:
        return Plan(h, kind)
    lb = np.broadcast_to(np.asarray(bounds[0], dtype=np.float64), x.shape)
    ub = np.broadcast_to(np.asarray(bounds[1], dtype=np.float64), x.shape)
    room_up, room_down = ub - x, x - lb
    size = np.abs(h)
    h = h.copy()
    if method == "central":
        central_fits = (room_up >= size) & (room_down >= size)
        up2, down2 = room_up >= 2 * size, room_down >= 2 * size
        one_sided = ~central_fits & (up2 | down2)
        kind[one_sided] = 2
        h[one_sided] = np.where(up2[one_sided], size[one_sided], -size[one_sided])
        rest = ~central_fits & ~one_sided
    else:
        rest = np.where(h > 0, room_up < size, room_down < size)
    if np.any(rest):
        # One first-order step, on the side that has room (shrunk if neither side does).
        kind[rest] = 0
        fits_up, fits_down = room_up >= size, room_down >= size
        if method == "backward":
            up = ~fits_down & (fits_up | (room_up > room_down))
        else:
            up = fits_up | (~fits_down & (room_up >= room_down))
        step = np.where(up, np.minimum(size, room_up), -np.minimum(size, room_down))
        h[rest] = step[rest]
        kind[rest & (h == 0)] = 3  # lower bound = upper bound: a fixed variable
    return Plan(h, kind)


# -- batch evaluation -------------------------------------------------------------------
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


def _process_context() -> multiprocessing.context.BaseContext:
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
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1):
            raise ValueError(f"workers must be a positive integer (the number of local processes); got {workers!r}.")
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(
                f"executor must be a concurrent.futures.Executor (with a submit method), such as "
                f"ProcessPoolExecutor or a dask Client's get_executor(); got {type(executor).__name__}."
            )
        self.workers = None if workers is None or workers == 1 else int(workers)
        self.executor = executor
        self.tolerate_failures = tolerate_failures
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
                    "must guard its top level with `if __name__ == \"__main__\":`, since every worker imports "
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


_SERIAL = Evaluator()


def approx_jacobian(
    fun: Callable[[np.ndarray], Any],
    x: np.ndarray,
    *,
    method: str = "forward",
    rel_step: float | np.ndarray | None = None,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    f0: Any = None,
    evaluator: Evaluator | None = None,
) -> tuple[np.ndarray, int]:
    """The finite-difference Jacobian of a flat function, and how many evaluations it took.

    ``fun`` maps a flat float64 vector to a number or an array (raveled). Returns an
    ``(m, n)`` array for vector outputs and an ``(n,)`` gradient for scalar ones. ``f0``,
    the value at ``x`` when known, saves one evaluation of the one-sided formulas.
    """
    x = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    plan = difference_plan(x, method, rel_step, bounds)
    points = plan.points(x)
    if plan.needs_f0 and f0 is None:
        points.insert(0, x.copy())
    evaluator = evaluator or _SERIAL
    values = [None if v is None else np.asarray(v, dtype=np.float64) for v in evaluator.map(fun, points)]
    evaluations = len(values)
    if plan.needs_f0 and f0 is None:
        f0, values = values[0], values[1:]
    if any(v is None or not np.isfinite(v).all() for v in values) and evaluator.tolerate_failures:
        if f0 is None:
            f0 = evaluator.map(fun, [x])[0]
            evaluations += 1
            if f0 is None:
                raise FloatingPointError("the function fails at x and at difference points around it.")
        plan, values, retried = _mirror_failures(fun, x, plan, values, np.asarray(f0, dtype=np.float64), bounds, evaluator)
        evaluations += retried
    f0_array = None if f0 is None else np.asarray(f0, dtype=np.float64)
    like = f0_array if f0_array is not None else values[0]
    values = [np.full(like.size, np.nan) if v is None else v.reshape(-1) for v in values]
    jac = plan.combine(None if f0_array is None else f0_array.reshape(-1), values)
    return (jac.reshape(-1) if like.ndim == 0 else jac), evaluations


def _mirror_failures(fun, x, plan: Plan, values: list, f0: np.ndarray, bounds, evaluator: Evaluator) -> tuple[Plan, list, int]:
    """Redo each coordinate whose difference points failed as one first-order step: the point
    of a central difference that worked, else the mirrored step (inside the bounds)."""
    h, kind = plan.h.copy(), plan.kind.copy()
    lb, ub = (np.full(x.shape, -np.inf), np.full(x.shape, np.inf)) if bounds is None else bounds
    good = lambda v: v is not None and np.isfinite(v).all()  # noqa: E731
    new_values, retry = [], []
    cursor = 0
    for i in range(x.size):
        count = {0: 1, 1: 2, 2: 2, 3: 0}[int(kind[i])]
        own = values[cursor:cursor + count]
        cursor += count
        if all(good(v) for v in own):
            new_values.extend(own)
            continue
        kind[i] = 0
        if plan.kind[i] == 1 and good(own[1]):  # the backward point of a central difference
            h[i], value = -h[i], own[1]
        elif plan.kind[i] == 1 and good(own[0]):
            value = own[0]
        else:
            h[i], value = -h[i], None
            if lb[i] <= x[i] + h[i] <= ub[i]:
                retry.append((len(new_values), i))
        new_values.append(value)
    if retry:
        points = []
        for _, i in retry:
            point = x.copy()
            point[i] += h[i]
            points.append(point)
        for (slot, _), value in zip(retry, evaluator.map(fun, points)):
            new_values[slot] = None if value is None else np.asarray(value, dtype=np.float64)
    return Plan(h, kind), new_values, len(retry)


# -- public functions over parameter structures ----------------------------------------
def _flat_function(fun: Callable, spec: ParamSpec, args: tuple, unpack: str, x0: Any) -> Callable:
    from .calling import make_caller, resolve_unpack

    call = make_caller(fun, resolve_unpack(fun, x0, unpack, len(args)), args, x0)
    return _FlatCall(call, spec)


class _FlatCall:
    """The user's function of the parameter structure as a function of the flat vector."""

    def __init__(self, call: Callable, spec: ParamSpec) -> None:
        self.call = call
        self.spec = spec

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import optree

        out = self.call(self.spec.unflatten(x))
        leaves = optree.tree_leaves(out)
        if len(leaves) == 1:
            return leaf_to_numpy(leaves[0]).astype(np.float64)
        return np.concatenate([np.ravel(leaf_to_numpy(leaf)) for leaf in leaves]).astype(np.float64)


def _flat_bounds(bounds: Any, spec: ParamSpec, x0: Any) -> tuple[np.ndarray, np.ndarray] | None:
    from .bounds import normalize_bounds

    return normalize_bounds(bounds, spec, x0)


def _derivative(fun, x0, args, method, rel_step, bounds, workers, executor, unpack):
    if not isinstance(args, tuple):
        args = (args,)
    spec = ParamSpec.from_tree(x0)
    x = spec.flatten(x0)
    flat_bounds = _flat_bounds(bounds, spec, x0)
    if flat_bounds is not None and np.any((x < flat_bounds[0]) | (x > flat_bounds[1])):
        raise ValueError("x0 lies outside bounds; finite differences are taken inside the bounds only.")
    flat = _flat_function(fun, spec, args, unpack, x0)
    with Evaluator(workers, executor) as evaluator:
        jac, _ = approx_jacobian(flat, x, method=method, rel_step=rel_step, bounds=flat_bounds, evaluator=evaluator)
    return spec, jac


def gradient(
    fun: Callable,
    x0: Any,
    args: tuple = (),
    *,
    method: str = "central",
    rel_step: float | None = None,
    bounds: Any = None,
    workers: int | None = None,
    executor: concurrent.futures.Executor | None = None,
    unpack: str = "auto",
) -> Any:
    """The finite-difference gradient of a scalar function, in x0's structure.

    Parameters
    ----------
    fun : callable
        Returns a number; receives the parameters like ``am.minimize``'s ``fun`` (NumPy
        arrays in x0's structure), then ``*args``.
    x0 : array, scalar or nested dict/list/tuple of those
        The point.
    method : {'central', 'forward', 'backward'}
        Central (default here: accurate, 2n evaluations) or one-sided (n + 1).
    rel_step : float, optional
        The step relative to ``max(1, |x_i|)``; by default ``sqrt(eps)`` one-sided and
        ``eps**(1/3)`` central.
    bounds : optional
        Any bounds ``am.minimize`` accepts; no point outside them is evaluated.
    workers, executor
        Evaluate the points on ``workers`` local processes or on an Executor (see
        :class:`Evaluator`).

    Examples
    --------
    >>> import numpy as np
    >>> g = gradient(lambda p: p["a"] ** 2 + 3 * p["b"].sum(), {"a": 1.0, "b": np.zeros(2)})
    >>> round(g["a"], 6), np.round(g["b"], 6).tolist()
    (2.0, [3.0, 3.0])
    """
    spec, jac = _derivative(fun, x0, args, method, rel_step, bounds, workers, executor, unpack)
    if jac.ndim != 1:
        raise ValueError(f"fun must return a scalar for gradient(); it returned {jac.shape[0]} values. Use jacobian().")
    return spec.restore(jac)


def jacobian(
    fun: Callable,
    x0: Any,
    args: tuple = (),
    *,
    method: str = "central",
    rel_step: float | None = None,
    bounds: Any = None,
    workers: int | None = None,
    executor: concurrent.futures.Executor | None = None,
    unpack: str = "auto",
) -> np.ndarray:
    """The finite-difference Jacobian ``(m, n)`` of a function with any output structure.

    Rows follow the output's leaves (flattened with optree, each raveled in C order),
    columns x0's flat parameter vector. Arguments as in :func:`gradient`.

    Examples
    --------
    >>> import numpy as np
    >>> J = jacobian(lambda x: np.array([x[0] * x[1], x[1]]), np.array([2.0, 3.0]))
    >>> np.round(J, 6).tolist()
    [[3.0, 2.0], [0.0, 1.0]]
    """
    _, jac = _derivative(fun, x0, args, method, rel_step, bounds, workers, executor, unpack)
    return jac if jac.ndim == 2 else jac.reshape(1, -1)

