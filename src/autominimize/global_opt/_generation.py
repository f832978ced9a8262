"""How a generation of differential evolution is evaluated: batched, in parallel or point by point.

:func:`evaluation_mode` chooses from ``vectorized``, ``workers`` and ``executor``;
:func:`evaluator` gives both engines their view of it: the vectorized engine's
``values(points)`` at the rows of ``points``, and scipy's ``func`` and ``workers``.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import scipy.optimize as so

from ._parallel import point_map
from ._problem import GlobalProblem
from ..validation import check_workers, is_one_of

__all__ = ["ScipyLayout", "columnwise", "evaluation_mode", "evaluator"]


def evaluation_mode(problem: GlobalProblem, vectorized: bool | str | None, workers: Any, executor: Any, updating: str | None) -> str:
    """'batched', 'parallel' or 'pointwise': how each generation is evaluated."""
    if not any(vectorized is v for v in (None, True, False)) and not is_one_of(vectorized, ("rows",)):
        raise TypeError(
            "vectorized must be None (batch when the backend can), True (fun(x) with x of shape (n, S), as in "
            f"scipy), 'rows' (x of shape (S, n)) or False; got {vectorized!r}."
        )
    if not is_one_of(updating, (None, "immediate", "deferred")):
        raise ValueError(f"updating={updating!r}: use 'immediate', 'deferred' or None (chosen from how a generation is evaluated).")
    check_workers(workers)
    parallel = executor is not None or workers not in (1, None)
    if parallel:
        if vectorized:
            raise ValueError("vectorized=True and workers/executor are alternatives: batch a generation in one call, or spread it over workers.")
        mode = "parallel"
    elif vectorized or (vectorized is None and problem.objective.batched is not None and problem.backend != "numpy" and updating != "immediate"):
        if problem.objective.batched is None:
            raise ValueError("vectorized=True: this objective cannot be evaluated on a batch; use vectorized=False or workers.")
        mode = "batched"
    else:
        return "pointwise"
    if updating == "immediate":
        raise ValueError(
            f"updating='immediate' evaluates one trial at a time, but a {mode} evaluation needs "
            "a whole generation: use updating='deferred' (or None), or vectorized=False without workers."
        )
    return mode


@contextlib.contextmanager
def evaluator(problem: GlobalProblem, mode: str, auto: bool, workers: Any, executor: Any):
    """For the evaluation mode: ``values(points)`` at the rows of ``points`` (the vectorized
    engine's), and scipy's ``func`` and ``workers`` evaluating the same way."""
    if mode == "parallel":
        with point_map(problem.remote, workers, executor, problem.count) as map_like:

            def in_parallel(points: np.ndarray) -> np.ndarray:
                return np.array(map_like(problem.remote, list(points)), dtype=np.float64)

            yield in_parallel, problem.remote, map_like
        return
    if mode == "pointwise":
        yield _PointByPoint(problem), problem.value, 1
        return
    batched = _BatchedGeneration(problem, auto)
    yield batched, batched.columns, 1


class _PointByPoint:
    """Values at the rows of ``points``, one call of the objective per row."""

    def __init__(self, problem: GlobalProblem):
        self.problem = problem

    def __call__(self, points: np.ndarray) -> np.ndarray:
        return np.array([self.problem.value(point) for point in points])


class _BatchedGeneration:
    """Values at the rows of ``points`` (shape (S, n)) in one call.

    With ``auto``, a function that cannot be mapped over a batch (its first batch fails) is
    evaluated point by point instead (still one call per generation, so the trajectory is
    the same). A batch that fails after one has succeeded is the function's own error.
    """

    def __init__(self, problem: GlobalProblem, auto: bool):
        self.problem = problem
        self.auto = auto
        self.pointwise = False

    def __call__(self, points: np.ndarray) -> np.ndarray:
        if self.pointwise:
            return np.array([self.problem.value(p) for p in points])
        try:
            values = self.problem.values(points)
        except Exception as exc:
            if not self.auto:
                raise
            self.pointwise = True
            warnings.warn(
                f"fun could not be evaluated on a batch ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "each member is evaluated separately. Pass vectorized=False to choose this.",
                UserWarning,
                stacklevel=6,
            )
            return np.array([self.problem.value(p) for p in points])
        self.auto = False  # it maps: from here on a failing batch is the function's error
        return values

    def columns(self, x: np.ndarray) -> np.ndarray:
        """scipy's vectorized ``func``: x of shape (n, S) in, S values out."""
        return self(np.asarray(x, dtype=np.float64).T)


class ScipyLayout:
    """A NumPy ``fun`` written for scipy's vectorized layout, at the rows of ``points``.

    scipy calls ``fun(x)`` with x of shape ``(n, S)`` and expects S values; for a structure,
    every leaf gets a trailing axis of size S (``x.T`` of the rows, split into the leaves).
    """

    def __init__(self, problem: GlobalProblem):
        from ..calling import make_caller

        remote = problem.remote
        self.call = make_caller(remote.fun, remote.unpack, remote.args, remote.keys)
        self.spec = problem.spec
        self.dtype = np.dtype(problem.precision)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        columns = np.array(points, dtype=self.dtype).T  # its own copy: fun may write into it
        count = columns.shape[1]
        leaves = [
            columns[start:stop].reshape(shape + (count,)) for shape, start, stop in zip(self.spec.shapes, self.spec.offsets, self.spec.offsets[1:])
        ]
        out = np.asarray(self.call(self.spec.unflatten_leaves(leaves)), dtype=np.float64)
        if out.size != count:
            raise ValueError(
                f"vectorized=True calls fun as scipy does, with x of shape (n, S) (a trailing axis of size S on "
                f"every leaf), and needs S values back: given S={count} points it returned shape {out.shape}. "
                "For x of shape (S, n) pass vectorized='rows'."
            )
        return out.reshape(count)


def columnwise(constraint: Any) -> Any:
    """A flat NonlinearConstraint for scipy's vectorized mode: x (n, S) in, (m, S) out."""
    if not isinstance(constraint, so.NonlinearConstraint):
        return constraint
    fun = constraint.fun

    def columns(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            return np.atleast_1d(fun(x))
        return np.stack([np.atleast_1d(fun(column)) for column in x.T], axis=1)

    return so.NonlinearConstraint(columns, constraint.lb, constraint.ub)
