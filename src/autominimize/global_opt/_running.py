"""One global solve on a built problem: its context, the user's callbacks and its result."""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from .._setup import clip_start
from ..drivers.scipy_local import _callback_style
from ..recording import attach_best, nested_solves
from ..params import ParamSpec
from ._problem import GlobalProblem

__all__ = ["check_finite_start", "finish", "intermediate_callback", "running", "structured_callback"]


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
        if problem.objective.best_x is not None:
            attach_best(exc, problem.restore(problem.objective.best_x), problem.objective.best_f)
        if problem.best_local is not None:  # the local solves that ended before it
            attach_best(exc, *problem.best_local)
        raise
    except Exception as exc:
        cause = exc.__cause__
        unwrap = isinstance(exc, RuntimeError) and getattr(cause, "autominimize_x", None) is not None
        error = cause if unwrap else exc
        if problem.objective.best_x is not None:
            error.autominimize_best_x = problem.restore(problem.objective.best_x)
        if unwrap:
            raise cause from None
        raise


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


def finish(result: so.OptimizeResult, problem: GlobalProblem) -> so.OptimizeResult:
    """scipy's global result with ``x`` in x0's structure, honest counts, backend, precision."""
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
