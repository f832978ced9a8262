"""One global solve on a built problem: its context, the user's callbacks and its result."""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from .._setup import clip_start
from ..drivers.scipy_local import _callback_style
from ..recording import attach_best, nested_solves
from ..params import ParamSpec
from ._problem import GlobalProblem

__all__ = ["check_finite_start", "finish", "intermediate_callback", "running", "settle_not_finite", "structured_callback"]


@contextlib.contextmanager
def running(problem: GlobalProblem):
    """The context of one global solve: the backend's context and one BLAS thread.

    An exception leaving it carries the best point evaluated in ``exc.autominimize_best_x``;
    scipy's wrapping of an exception from ``func`` in a RuntimeError about its map-like
    callable is undone, so the user's own exception propagates.
    """
    from ..drivers.blas_threads import single_blas_thread

    try:
        with problem.context(), single_blas_thread(), nested_solves():
            yield
    except KeyboardInterrupt as exc:  # one Ctrl-C ends the local solves and the global run
        _attach_best(exc, problem)
        raise
    except Exception as exc:
        cause = exc.__cause__
        unwrap = isinstance(exc, RuntimeError) and getattr(cause, "autominimize_x", None) is not None
        error = cause if unwrap else exc
        _attach_best(error, problem)
        if unwrap:
            raise cause from None
        raise


def _attach_best(exc: BaseException, problem: GlobalProblem) -> None:
    """The best point evaluated, or of the local solves that ended before ``exc``, on ``exc``."""
    if problem.objective.best_x is not None:
        attach_best(exc, problem.restore(problem.objective.best_x), problem.objective.best_f)
    if problem.best_local is not None:
        attach_best(exc, *problem.best_local)


def check_finite_start(x: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None, spec: ParamSpec) -> np.ndarray:
    """x0 clipped into the bounds, with a warning naming the leaves that moved."""
    return clip_start(x, bounds, spec, stacklevel=3)


def structured_callback(callback: Callable | None, problem: GlobalProblem) -> Callable | None:
    """``callback(x, *rest)`` from scipy becomes the user's ``callback(x_structured, *rest)``."""
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}.")

    def scipy_callback(x: Any, *rest: Any) -> Any:
        return callback(problem.restore(np.asarray(x, dtype=np.float64)), *rest)

    return scipy_callback


def intermediate_callback(
    callback: Callable | None, problem: GlobalProblem, old_style: Callable[[Callable, Any, so.OptimizeResult], Any]
) -> Callable | None:
    """A new-style scipy callback that serves the user's new- or old-style callback.

    New style (one parameter named ``intermediate_result``) gets scipy's ``OptimizeResult``
    with ``x`` in x0's structure; old style is called by ``old_style(callback, x, result)``.
    """
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}.")
    new = _callback_style(callback) == "new"

    def scipy_callback(intermediate_result: so.OptimizeResult) -> Any:
        x = problem.restore(intermediate_result.x)
        if new:
            fields = dict(intermediate_result)
            fields["x"] = x
            return callback(intermediate_result=so.OptimizeResult(fields))
        return old_style(callback, x, intermediate_result)

    return scipy_callback


def finish(result: so.OptimizeResult, problem: GlobalProblem, *, constrained: bool = False) -> so.OptimizeResult:
    """scipy's global result with ``x`` in x0's structure, honest counts, backend, precision.

    A run that ends where fun (or x) is not finite is never a success (see
    :func:`settle_not_finite`).
    """
    settle_not_finite(result, problem, constrained)
    result.x = problem.restore(result.x)
    jac = result.get("jac")
    if isinstance(jac, np.ndarray) and jac.ndim == 1 and jac.size == problem.n:
        result.jac = problem.restore(jac)
    result.fun = float(np.asarray(result.fun).reshape(()))
    result.update(problem.counts())
    result.nlocal = problem.n_local
    result.backend = problem.backend
    result.precision = problem.precision
    return result


def settle_not_finite(result: so.OptimizeResult, problem: GlobalProblem, constrained: bool) -> None:
    """A run whose answer is not finite (fun NaN or infinite where some points are): never a
    success; x is the best finite point evaluated, or with constraints (where the lowest value
    may be infeasible) the best local solve's, as ``am.minimize`` does. ``result.x`` is flat."""
    fun = float(np.asarray(result.fun).reshape(()))
    if math.isfinite(fun) and np.isfinite(np.asarray(result.x, dtype=np.float64)).all():
        return
    candidates = []
    if problem.best_local is not None:
        candidates.append((problem.best_local[1], problem.flat(problem.best_local[0])))
    objective = problem.objective
    if not constrained and objective.best_x is not None and math.isfinite(objective.best_f):
        candidates.append((objective.best_f, objective.best_x))
    message = result.get("message", "")
    own = "; ".join(message) if isinstance(message, list) else message
    result.success = False
    if not candidates:
        result.message = f"fun is {fun} where the method ended, and no point evaluated had a finite value. The method's own message: {own}"
        return
    result.fun, result.x = min(candidates, key=lambda candidate: candidate[0])
    result.pop("jac", None)
    result.message = (
        f"the last point was not finite (fun is {fun} where the method ended); x is the best finite point evaluated. The method's own message: {own}"
    )
