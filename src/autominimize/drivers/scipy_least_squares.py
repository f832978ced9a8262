"""The scipy least-squares driver: ``scipy.optimize.least_squares`` on a residual objective.

The residual objective (:class:`~autominimize.problem.ResidualObjective`) gives the residuals
and their Jacobian on the flat vector; this module turns the caller's options into scipy's
(bounds, ``x_scale``, a sparse Jacobian, the callback), frees the variables fixed by their
bounds, runs scipy with one BLAS thread and puts the result back in x0's structure.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ..params import ParamSpec
from ..problem import ResidualObjective
from ..recording import attach_best, in_nested_solve
from .blas_threads import single_blas_thread
from .fixed_variables import FixedVariables

__all__ = ["LEAST_SQUARES_METHODS", "IterationReport", "flat_x_scale", "run_least_squares", "scipy_least_squares_bounds"]

LEAST_SQUARES_METHODS = ("trf", "dogbox", "lm")
#: the message of a solve ended by Ctrl-C (``status=-1``), am.minimize's
_INTERRUPTED = "Interrupted by KeyboardInterrupt (Ctrl-C); x is the best point evaluated."


def scipy_least_squares_bounds(bounds: Any, n: int) -> Any:
    """scipy.optimize.least_squares reads a 2-tuple as ``(lb, ub)``, each a number or n numbers."""
    if not (isinstance(bounds, tuple) and len(bounds) == 2):
        return bounds

    def flat_limit(value: Any) -> bool:
        if value is None or np.ndim(value) == 0:
            return True
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return False
        return array.ndim == 1 and array.size == n

    if all(flat_limit(part) for part in bounds) and any(np.ndim(part) == 1 for part in bounds):
        low, high = (np.full(n, -np.inf if i == 0 else np.inf) if part is None else part for i, part in enumerate(bounds))
        return so.Bounds(low, high)
    return bounds


def flat_x_scale(x_scale: Any, spec: ParamSpec) -> Any:
    """``x_scale`` as scipy takes it: a number, a string, or one value per flat parameter."""
    if x_scale is None or isinstance(x_scale, str) or np.ndim(x_scale) == 0 and not isinstance(x_scale, (dict, list, tuple)):
        return x_scale
    if isinstance(x_scale, np.ndarray) and x_scale.size == spec.size:
        return x_scale.astype(np.float64).reshape(-1)
    return spec.flatten(x_scale, "x_scale")


class IterationReport:
    """A callback on the flat problem, for ``am.minimize``'s least-squares family.

    ``start(spec, x0, backend, precision)`` once the problem is built;
    ``report(nit, x, f, g, counts)`` after each iteration, where ``f`` is the cost
    ``0.5 * r @ r``, ``g`` its gradient ``J.T @ r`` when the Jacobian at x is known (None
    otherwise) and ``counts`` the problem's evaluation counts; then the user's ``callback``
    as ``am.least_squares`` calls it. 'lm' calls no callback: it is only started.
    """

    def __init__(self, start: Callable, report: Callable, callback: Callable | None = None) -> None:
        self.start, self.report, self.callback = start, report, callback

    def scipy_callback(self, problem: ResidualObjective, spec: ParamSpec, x0: np.ndarray, backend: str, precision: str) -> Callable:
        self.start(spec, x0, backend, precision)
        user = None if self.callback is None else _wrap_callback(self.callback, spec)

        def callback(intermediate_result: so.OptimizeResult) -> None:
            x = np.asarray(intermediate_result.x, dtype=np.float64).reshape(-1)
            known = problem.known(x)
            g = known[1].T @ known[0] if known is not None else None
            counts = {"nfev": problem.nfev, "njev": problem.njev, "nhev": 0, "nhvp": 0}
            self.report(int(intermediate_result.nit), x, float(intermediate_result.cost), g, counts)
            if user is not None:
                user(intermediate_result)

        return callback


def _wrap_callback(callback: Callable, spec: ParamSpec) -> Callable:
    """The user's callback (``intermediate_result`` or ``x``, in x0's structure) for scipy;
    returning True stops the solve."""
    params = list(inspect.signature(callback).parameters) if callable(callback) else []
    if params == ["intermediate_result"]:

        def new_style(intermediate_result: so.OptimizeResult) -> Any:
            fields = dict(intermediate_result)
            fields["x"] = spec.restore(np.asarray(fields["x"]))
            if callback(intermediate_result=so.OptimizeResult(fields)) is True:
                raise StopIteration

        return new_style

    def old_style(intermediate_result: so.OptimizeResult) -> Any:
        if callback(spec.restore(np.asarray(intermediate_result.x))) is True:
            raise StopIteration

    return old_style


def run_least_squares(
    problem: ResidualObjective,
    spec: ParamSpec,
    x0_flat: np.ndarray,
    flat_bounds: tuple[np.ndarray, np.ndarray] | None,
    backend: Any,
    dtype: str,
    *,
    jac: Any,
    jac_sparsity: Any,
    diff_step: Any,
    x_scale: Any,
    callback: Callable | None,
    options: dict[str, Any],
) -> so.OptimizeResult:
    """Solve with ``scipy.optimize.least_squares`` and ``options`` (its method, tolerances,
    loss, trust-region solver, ...); the result in x0's structure with the problem's counts.

    ``jac``: None for the backend's Jacobian (sparse where ``jac_sparsity`` asks or, on JAX,
    where J is found sparse), a scheme for the problem's differences or scipy's sparse ones
    (with ``jac_sparsity``), a callable for the user's Jacobian (on the problem already).
    """
    method, tr_solver = options["method"], options["tr_solver"]
    x_scale = flat_x_scale(x_scale, spec)
    if x_scale is not None:
        options["x_scale"] = x_scale
    if flat_bounds is not None:
        options["bounds"] = flat_bounds
    sparse = None
    if jac is None and problem.user_fun_and_jac is None:
        from .sparse_least_squares import sparse_residual_jacobian  # sparsity detection: loaded by least squares only

        with backend.solve_context(dtype):
            sparse = sparse_residual_jacobian(problem, x0_flat, flat_bounds, jac_sparsity, method, tr_solver)
    if sparse is not None:  # compressed passes of the backend; scipy's LSMR needs only J @ v and J.T @ u
        options.update(jac=sparse[0], tr_solver=tr_solver or "lsmr")
        jac_sparsity = None
    elif jac_sparsity is not None and jac is not None:
        options.update(jac=jac, jac_sparsity=jac_sparsity, diff_step=diff_step)
        problem.scheme = None
    else:
        if tr_solver is None and options["tr_options"] and not callable(jac):
            raise ValueError(
                "tr_options is for tr_solver='lsmr'; with tr_solver=None scipy chooses 'exact' for this problem's dense "
                "Jacobian and would ignore it. Pass tr_solver='lsmr' (or jac_sparsity= for a sparse Jacobian), or leave tr_options out."
            )
        jac_sparsity = None
        options["jac"] = problem.jacobian
    if isinstance(callback, IterationReport):
        scipy_callback = callback.scipy_callback(problem, spec, x0_flat, backend.name, dtype)
        if method != "lm":
            options["callback"] = scipy_callback
    elif callback is not None:
        options["callback"] = _wrap_callback(callback, spec)
    residual_function = problem.value_uncached if jac_sparsity is not None else problem.value
    start = x0_flat
    fixed = FixedVariables.of(x0_flat, flat_bounds)
    if fixed is not None:  # scipy refuses lower = upper: it solves for the free variables only
        residual_function, start = fixed.function(residual_function), fixed.template[fixed.free]
        options["bounds"] = fixed.bounds
        if callable(options["jac"]):
            options["jac"] = fixed.jacobian(options["jac"])
        if options.get("jac_sparsity") is not None:
            options["jac_sparsity"] = fixed.reduce_columns(options["jac_sparsity"])
        if "x_scale" in options:
            options["x_scale"] = fixed.reduce(options["x_scale"])
        if "callback" in options:
            options["callback"] = fixed.callback(options["callback"])
    result, interrupted = _solve(problem, spec, residual_function, start, x0_flat, backend, dtype, options)
    if interrupted:  # the best point, over the full vector already
        return _finish(result, problem, spec, backend.name, dtype)
    if fixed is not None:
        result = fixed.expand(result)
    result = _finish(result, problem, spec, backend.name, dtype)
    if sparse is not None:
        result.sparsity = sparse[1].summary()
    return result


def _solve(
    problem: ResidualObjective, spec: ParamSpec, residuals: Callable, start: np.ndarray, x0_flat: np.ndarray, backend: Any, dtype: str, options: dict
) -> tuple[so.OptimizeResult, bool]:
    """``(result, interrupted)``: scipy's least_squares from ``start``; a Ctrl-C ends it at the
    best point evaluated (status -1) unless the solve is nested, and any exception leaving it
    carries that point."""
    try:
        with backend.solve_context(dtype), problem.evaluator:
            problem.start(x0_flat)  # fail before scipy starts, with the point attached
            with single_blas_thread():
                return so.least_squares(residuals, start, **options), False
    except KeyboardInterrupt as exc:
        if problem.best_x is None or in_nested_solve():
            if problem.best_x is not None:
                attach_best(exc, spec.restore(problem.best_x), problem.best_cost)
            raise
        return _interrupted(problem), True
    except Exception as exc:  # the user's own error, or scipy's (a Jacobian of NaN): the best point goes with it
        if problem.best_x is not None:
            attach_best(exc, spec.restore(problem.best_x), problem.best_cost)
        raise


def _interrupted(problem: ResidualObjective) -> so.OptimizeResult:
    """The result of a solve ended by Ctrl-C: the best point evaluated, over the full vector
    (the problem sees the fixed variables too); its Jacobian and gradient where they are
    known, else None (no evaluation after a Ctrl-C)."""
    x, r = problem.best_x, problem.best_residuals
    known = problem.known(x)
    jac = None if known is None else known[1]
    return so.OptimizeResult(
        x=x, cost=problem.best_cost, fun=r, jac=jac, grad=None if jac is None else jac.T @ r, status=-1, success=False, message=_INTERRUPTED
    )


def _finish(result: so.OptimizeResult, problem: ResidualObjective, spec: ParamSpec, backend: str, dtype: str) -> so.OptimizeResult:
    """x and the gradient in x0's structure, the problem's counts.

    ``res.jac`` stays as scipy returns it: dense, or sparse when the Jacobian was computed
    sparse (``jac_sparsity``), as in scipy.
    """
    x_flat = np.asarray(result.x, dtype=np.float64).reshape(-1)
    result.x = spec.restore(x_flat)
    if result.grad is not None:
        result.grad = spec.restore(np.asarray(result.grad, dtype=np.float64).reshape(-1))
    result.nfev = problem.nfev
    result.njev = problem.njev
    result.nfail = problem.failures
    result.backend = backend
    result.precision = dtype
    return result
