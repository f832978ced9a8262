"""The bookkeeping of the scalar objective: its one-slot cache, best point, failed points,
counters and what the journal and the observers are told.

:class:`ScalarBookkeeping` keeps the state every evaluation of
:class:`~autominimize.problem.scalar.Objective` updates; the objective adds the evaluations
themselves (value, gradient, curvature, batches of values), ``value`` among them, which
:meth:`ScalarBookkeeping.report_iteration` calls for an iterate given without its value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import math
import time

import numpy as np

from ..backends.base import ScalarFunctions, as_flat_float64, offered
from ..errors import attach_point
from ..params import ParamSpec
from .policy import Counters, check_error_handling

if TYPE_CHECKING:
    from ..recording.history import History

__all__ = ["ScalarBookkeeping"]


class ScalarBookkeeping:
    """The cache, counters, best point and failed points of one scalar objective.

    Parameters
    ----------
    functions
        The backend's compiled functions (their finite-difference evaluations are counted).
    spec
        x0's structure, used to give failures a readable point.
    journal, observers, error_handling
        As :class:`~autominimize.problem.scalar.Objective` takes them.
    """

    def __init__(self, functions: ScalarFunctions, spec: ParamSpec, journal: History | None, observers: list | None, error_handling: str) -> None:
        self.functions = functions
        self.spec = spec
        self.error_handling = check_error_handling(error_handling)
        self.journal = journal
        self.observers = list(observers or [])
        self._evaluation_observers = [o for o in self.observers if getattr(o, "evaluation", None) is not None] if self.observers else []
        self.reporting = journal is not None or bool(self.observers)  # whether anyone follows the solve
        self.nit = 0
        self.counters = Counters()
        self._x: np.ndarray | None = None
        self._key: bytes | None = None
        self._f: float | None = None
        self._g: np.ndarray | None = None
        self._g_norm = math.nan  # of the cached gradient, kept for a journal only
        self._spare_g: np.ndarray | None = None  # computed with the cached value, not asked for yet
        self._failed = False  # whether the cached point is a failed point
        self._product: tuple | None = None  # the last Hessian-vector product: (x, p, Hp)
        self.best_x: np.ndarray | None = None
        self.best_f = np.inf
        self.failures = 0  # failed points (error_handling='continue')
        self.stop_message: str | None = None  # why the solve was stopped from a callback
        #: under 'continue', whether x is failed for a reason outside the objective (a constraint
        #: trust-constr evaluates there failed): the objective's value there is failed too
        self.fails_with: Callable[[np.ndarray], bool] | None = None

    # -- bookkeeping -----------------------------------------------------------------
    # Points are compared by their bytes: cheaper than np.array_equal, and a point that
    # differs only in the sign of a zero is merely evaluated again.
    def known_gradient(self, x: np.ndarray) -> np.ndarray | None:
        """The gradient at x if it has been computed already, else None."""
        return self._g if self._is_cached(x) else None

    def _is_cached(self, x: np.ndarray) -> bool:
        return self._key is not None and x.tobytes() == self._key

    def _store(self, x: np.ndarray, f: float, g: np.ndarray | None, norm: float = math.nan) -> None:
        self._x = x.copy()
        self._key = self._x.tobytes()
        self._f = f
        self._g = g
        self._g_norm = norm
        self._spare_g = None
        self._failed = False
        if f < self.best_f:  # _keep_if_best, written out: it runs at every evaluation
            self.best_f = f
            self.best_x = self._x

    def _keep_if_best(self, x: np.ndarray, f: float) -> None:
        if f < self.best_f:
            self.best_f = f
            self.best_x = x if x is self._x else x.copy()

    def _keep_best_of(self, points: np.ndarray, values: np.ndarray) -> None:
        """Keep the best row of ``points`` (a NaN value is never the best)."""
        if not values.size:
            return
        index = int(values.argmin())
        if math.isnan(values[index]):  # argmin stops at the first NaN: look again, NaN as +inf
            index = int(np.fmin(values, np.inf).argmin())
        if values[index] < self.best_f:
            self.best_f = float(values[index])
            self.best_x = points[index].copy()

    def _run(self, what: str, x: np.ndarray, function: Callable, *arguments: Any) -> Any:
        """Call a backend or user function; count extra (finite-difference) evaluations and
        attach the point to any exception."""
        functions = self.functions
        before = functions.extra_evaluations
        try:
            out = function(*arguments)
        except BaseException as exc:
            self._raised(exc, what, x, before)
            raise
        if functions.extra_evaluations != before:
            self._count_extra(x, functions.extra_evaluations - before)
        return out

    def _raised(self, exc: BaseException, what: str, x: np.ndarray, before: int) -> None:
        """What :meth:`_run` does when the function it called raised ``exc``: the point
        attached, a value computed before the failure kept, the extra evaluations counted
        (``before``: the backend's count before the call)."""
        if isinstance(exc, Exception):
            attach_point(exc, self.spec, x, what)
        known = getattr(exc, "autominimize_value", None)  # a Ctrl-C in the differences too
        if known is not None and known[0].tobytes() == x.tobytes():
            self._keep_if_best(x, float(known[1]))
            if self.reporting:  # x may be the method's working array: the journal keeps a copy
                self._report("value", x.copy(), float(known[1]), None)
        self._count_extra(x, self.functions.extra_evaluations - before)

    def _count_extra(self, x: np.ndarray, extra: int) -> None:
        """Count and report the evaluations a call made beyond its own."""
        if extra:
            self.counters.nfev += extra
            if self.reporting:
                kind = offered(self.functions, "extra_evaluation_kind") or "finite-difference"
                self._report(kind, x, math.nan, None, count=extra)

    def _attempt(self, what: str, x: np.ndarray, function: Callable, *arguments: Any) -> Any:
        """:meth:`_run` under the error policy: with 'continue', a failure returns None."""
        if self.error_handling == "raise":
            return self._run(what, x, function, *arguments)
        try:
            out = self._run(what, x, function, *arguments)
        except Exception:
            return None
        return None if self.fails_with is not None and self.fails_with(x) else out

    def _check_gradient_path(self, x: np.ndarray) -> None:
        """At a first gradient that is zero: it may come from a value not connected to x (JAX's stop_gradient)."""
        if (check := offered(self.functions, "check_gradient_path")) is not None:
            self._run("the gradient", x, check, x)

    def _check_probe(self, f: float, g: np.ndarray | None, where: str) -> None:
        """Under 'continue', the first point must be finite: there is no earlier point to back off to."""
        if not math.isfinite(f):
            raise ValueError(
                f"fun is {f} at {where}; error_handling='continue' needs a finite value at {where} to back off to. "
                "Start from a point where fun is finite."
            )
        if g is not None and not np.isfinite(g).all():
            index = int(np.flatnonzero(~np.isfinite(g))[0])
            raise ValueError(
                f"the gradient of fun is not finite at {where} (it is {g[index]} at {self.spec.element_name(index)}); "
                f"error_handling='continue' needs a finite value and gradient at {where} to back off to. "
                "Start from a point where fun is differentiable."
            )

    def _fail(self, x: np.ndarray) -> float:
        """Make x a failed point: +inf, zero derivatives, a 'failed' evaluation reported."""
        self._store(x, math.inf, np.zeros_like(x), 0.0)
        self._failed = True
        self.failures += 1
        if self.reporting:
            self._report("failed", self._x, math.inf, None)
        return math.inf

    def settle(self, result: Any, x0: np.ndarray, constrained: bool = False) -> Any:
        """Make a method's result honest about why it stopped and the failed points it met.

        A solve a callback stopped says so (``stop_message``) rather than scipy's
        "`callback` raised `StopIteration`".

        A method may end at a failed point (one whose gradient failed after its value was
        taken, at a step too short to tell), or call itself converged at x0 when every point
        it tried after x0 failed. Then ``success`` is False, ``x`` is the best point evaluated
        (never a point that is not finite) and ``fun`` its value. A method that fails after
        meeting failed points returns the best point evaluated too, unless ``constrained``
        (the lowest value may be at an infeasible point).
        """
        if self.stop_message is not None:
            result.success = False
            result.message = self.stop_message
        if not self.failures:
            return self._settle_not_finite(result)
        x = np.asarray(result.x, dtype=np.float64).reshape(-1)
        fun = result.get("fun")
        if not np.isfinite(x).all() or self.is_failed(x) or fun is None or not np.isfinite(fun):
            result.x = (self.best_x if self.best_x is not None else x0).copy()
            result.fun = self.best_f
            result.pop("jac", None)
            result.success = False
            result.message = (
                f"the method ended at a point that failed under error_handling='continue' "
                f"({self.failures} failed evaluations); x is the best point evaluated. The method's "
                f"own message: {result.get('message', '')}"
            )
        elif not result.get("success") and self.best_f < fun and not constrained:
            result.x, result.fun = self.best_x.copy(), self.best_f
            result.pop("jac", None)
            result.message = (
                f"{result.get('message', '')} ({self.failures} failed evaluations under error_handling='continue'; x is the best point evaluated)"
            )
        elif np.array_equal(x, x0) and result.get("success"):
            result.success = False
            result.message = (
                f"every point tried after x0 failed ({self.failures} failed evaluations under "
                f"error_handling='continue'); x is x0. The method's own message: {result.get('message', '')}"
            )
        return result

    def _settle_not_finite(self, result: Any) -> Any:
        """A method may end where fun is NaN or infinite (L-BFGS-B accepts such a step when a
        user jac stays finite): never a success; x is the best finite point evaluated."""
        fun = result.get("fun")
        if fun is None or math.isfinite(fun):
            return result
        result.success = False
        result.pop("jac", None)
        if self.best_x is None or not math.isfinite(self.best_f):
            result.message = f"fun is {float(fun)} where the method ended, and no point evaluated had a finite value. The method's own message: {result.get('message', '')}"
            return result
        result.x, result.fun = self.best_x.copy(), self.best_f
        result.message = (
            f"the last point was not finite (fun is {float(fun)} where the method ended); x is the best finite point evaluated. "
            f"The method's own message: {result.get('message', '')}"
        )
        return result

    def derivatives_given(self) -> list[tuple[str, np.ndarray, np.ndarray, tuple]]:
        """The first derivatives last handed to the method, each as ``(kind, values, x,
        inputs)``: the gradient at the cached point (``'jac'``), then the last Hessian-vector
        product (``'hessp'``, its inputs the point and the direction), for naming one that
        the method found not finite after the fact."""
        given = []
        if self._g is not None:
            given.append(("jac", self._g, self._x, (self._x,)))
        if self._product is not None:
            x, p, out = self._product
            given.append(("hessp", out, x, (x, p)))
        return given

    def is_failed(self, x: np.ndarray) -> bool:
        """Whether x is the failed point in the cache (its derivatives are zero)."""
        return self._failed and self._is_cached(x)

    # An evaluation that computed f reports the cache's own copy of x, which is never
    # modified: the journal and the observers may keep it without copying.
    def _report(self, kind: str, x: np.ndarray, f: float, g: np.ndarray | None, norm: float = math.nan, count: int = 1) -> None:
        if self.journal is not None:
            self.journal.add_evaluation(kind, x, f, norm, count)
        self._notify(kind, x, f, g, count)

    def _notify(self, kind: str, x: np.ndarray, f: float, g: np.ndarray | None, count: int = 1) -> None:
        for observer in self._evaluation_observers:
            observer.evaluation(kind, x, f, g, count)

    def report_iteration(self, x: Any, f: float | None = None) -> None:
        """The method accepted ``x`` as its next iterate: record it and tell the observers.

        They get a copy of x that is never modified (they may keep it): the cache's own when
        x is the point evaluated last, as it usually is, with its gradient and that
        gradient's norm.
        """
        self.nit += 1
        if type(x) is not np.ndarray or x.dtype != np.float64 or x.ndim != 1:
            x = as_flat_float64(x)
        if f is None:
            f = self.value(x)
        if self._is_cached(x):
            x, grad, norm = self._x, self._g, self._g_norm
        else:
            x, grad, norm = x.copy(), None, math.nan
        f = float(f)
        if self.journal is not None:
            self.journal.add_iteration(self.nit, x, f, norm, self.counters.nfev, self.counters.njev)
        for observer in self.observers:
            observer.iteration(self.nit, x, f, grad, self.counters)

    def result_callback(self) -> Callable[[Any], None]:
        """scipy's new-style callback reporting each iterate: :meth:`report_iteration` of the
        result's x and f, written out for an iterate that is the point evaluated last (as it
        nearly always is). It runs at every iteration, where each further Python call costs
        about 0.7% of a cheap solve.
        """
        journal, observers, counters = self.journal, self.observers, self.counters
        rows = journal._iteration_rows if journal is not None else None
        clock = time.perf_counter
        start = journal.start if journal is not None else 0.0
        keep_points = journal is not None and journal.keep_points

        def record(intermediate_result: Any) -> None:
            x, f = intermediate_result["x"], intermediate_result.get("fun")
            if f is None or type(x) is not np.ndarray or x.tobytes() != self._key:
                self.report_iteration(x, f)
                return
            self.nit += 1
            f = float(f)
            if rows is not None:
                # History.add_iteration's row (a test checks that the two paths record alike)
                rows.append((self.nit, clock() - start, f, self._g_norm, counters.nfev, self._x if keep_points else None, counters.njev))
                if len(rows) >= journal._check_at:
                    journal._thin_points()
            for observer in observers:
                observer.iteration(self.nit, self._x, f, self._g, counters)

        return record

    def _gradient_for_curvature(self, x: np.ndarray) -> np.ndarray:
        """The user's gradient (``user_gradient``, set by the objective) where the functions
        difference it for curvature: counted in njev, as the method's own calls are."""
        self.counters.njev += 1
        return self.user_gradient(x)
