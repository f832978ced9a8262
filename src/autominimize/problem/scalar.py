"""The flat scalar objective scipy sees: one-slot cache, evaluation counters, error policy.

Every evaluation of the user's function goes through :class:`Objective`, so this is where
evaluations are counted, where the point of a failure is attached to the exception, and
where the error policy (``error_handling``) applies:

* ``'raise'`` (default): an exception from the user's function propagates with the point in
  ``exc.autominimize_x``; a NaN or infinite value is handed to the method unchanged.
* ``'continue'``: a point where the value or the gradient raises or is not finite is a
  *failed point*: its value is ``+inf`` and its gradient, Hessian-vector products and
  Hessian are zero. ``+inf`` fails every sufficient-decrease test, so line searches shorten
  the step and trust regions reject the step and shrink; the zero derivatives are never used
  by an accepted step, they only keep the method's arithmetic finite. The point is reported
  to the observers as a ``'failed'`` evaluation. So that a failed gradient is known before
  the method has the point's value, a method that uses the gradient gets value and gradient
  computed together under this policy. x0 must have a finite value (and gradient, where the
  method uses one): there is no earlier point to back off to.

A backend that computed the value at a point before its derivative failed there (finite
differences) leaves it on the exception as ``autominimize_value`` (the point and the
value), so that the point still counts as the best evaluated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import math
import time

import numpy as np

from ..backends.base import ScalarFunctions, as_flat_float64, grad_norm, offered
from ..errors import attach_point
from ..params import ParamSpec
from .policy import Counters, check_error_handling

if TYPE_CHECKING:
    from ..recording.history import History

__all__ = ["Objective"]


class Objective:
    """Evaluate value, gradient, HVP and Hessian at flat points, each at most once per point.

    Parameters
    ----------
    functions
        The backend's compiled functions.
    spec
        x0's structure, used to give failures a readable point.
    gradient, hessian, hessp
        Optional user-supplied derivatives of the flat vector (already flattened); each
        replaces the backend's for that derivative only.
    second_order
        What curvature the method asks for: ``'hessp'`` (Hessian-vector products), ``'hess'``
        (Hessians), or None (none, or an approximation scipy builds itself); it chooses how
        the backend computes value and gradient.
    journal
        The solve's record: every evaluation and iteration is added to it, with its
        gradient norm.
    observers
        Told of every evaluation and iteration (see :class:`~autominimize.recording.history.Observer`);
        fixed once the objective is built.
    error_handling
        ``'raise'`` or ``'continue'``: what a failing evaluation does (see the module
        docstring).
    """

    def __init__(
        self,
        functions: ScalarFunctions,
        spec: ParamSpec,
        *,
        gradient: Callable[[np.ndarray], np.ndarray] | None = None,
        hessian: Callable[[np.ndarray], np.ndarray] | None = None,
        hessp: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        differentiable: bool = True,
        second_order: Any = None,
        journal: History | None = None,
        observers: list | None = None,
        error_handling: str = "raise",
    ) -> None:
        self.functions = functions
        self.error_handling = check_error_handling(error_handling)
        self.differentiable = differentiable
        self.journal = journal
        self.observers = list(observers or [])
        self._evaluation_observers = [o for o in self.observers if getattr(o, "evaluation", None) is not None]
        self.reporting = journal is not None or bool(self.observers)  # whether anyone follows the solve
        self.nit = 0
        # With HVPs to follow, a backend that can linearize while it computes the gradient
        # (JAX) does both in one call.
        self._linearize = None
        if second_order == "hessp" and hessp is None:
            self._linearize = offered(functions, "value_grad_and_hvp")
        # Without curvature to follow, a backend that keeps each point's graph for it (torch)
        # can compute value and gradient and let the graph go.
        self._value_and_grad = offered(functions, "value_and_grad")  # None: values only
        if second_order not in ("hessp", "hess"):
            self._value_and_grad = offered(functions, "value_and_grad_once") or self._value_and_grad
        # value and gradient as the method asks for them: (f, g), or (f, g, |g|) for a journal,
        # with the norm computed in the backend's own call where it offers that
        self._evaluate_gradient = self._value_grad_linearized if self._linearize is not None else self._value_and_grad
        if journal is not None and self._evaluate_gradient is not None:
            with_norm = offered(functions, "value_grad_and_norm") if self._linearize is None else None
            self._evaluate_gradient = with_norm or _with_norm(self._evaluate_gradient)
        self._evaluate_value = functions.value
        if not differentiable:
            self._evaluate_value = offered(functions, "value_without_gradient") or functions.value
        self.spec = spec
        self.user_gradient = gradient
        self.user_hessian = hessian
        self.user_hessp = hessp
        self.counters = Counters()
        self._x: np.ndarray | None = None
        self._key: bytes | None = None
        self._f: float | None = None
        self._g: np.ndarray | None = None
        self._g_norm = math.nan  # of the cached gradient, kept for a journal only
        self._failed = False  # whether the cached point is a failed point
        self._hvp_x: np.ndarray | None = None
        self._hvp: Callable[[np.ndarray], np.ndarray] | None = None
        self._hess_x: np.ndarray | None = None
        self._hess: np.ndarray | None = None
        self.best_x: np.ndarray | None = None
        self.best_f = np.inf
        self.failures = 0  # failed points (error_handling='continue')
        self.stop_message: str | None = None  # why the solve was stopped from a callback

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
        self._failed = False
        self._keep_if_best(self._x, f)

    def _keep_if_best(self, x: np.ndarray, f: float) -> None:
        if f < self.best_f:
            self.best_f = f
            self.best_x = x if x is self._x else x.copy()

    def _run(self, what: str, x: np.ndarray, function: Callable, *arguments: Any) -> Any:
        """Call a backend or user function; count extra (finite-difference) evaluations and
        attach the point to any exception."""
        before = self.functions.extra_evaluations
        try:
            return function(*arguments)
        except Exception as exc:
            attach_point(exc, self.spec, x, what)
            known = getattr(exc, "autominimize_value", None)
            if known is not None and known[0].tobytes() == x.tobytes():
                self._keep_if_best(x, float(known[1]))
            raise
        finally:
            extra = self.functions.extra_evaluations - before
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
            return self._run(what, x, function, *arguments)
        except Exception:
            return None

    def _fail(self, x: np.ndarray) -> float:
        """Make x a failed point: +inf, zero derivatives, a 'failed' evaluation reported."""
        self._store(x, math.inf, np.zeros_like(x), 0.0)
        self._failed = True
        self.failures += 1
        if self.reporting:
            self._report("failed", self._x, math.inf, None)
        return math.inf

    def settle(self, result: Any, x0: np.ndarray) -> Any:
        """Make a method's result honest about why it stopped and the failed points it met.

        A solve a callback stopped says so (``stop_message``) rather than scipy's
        "`callback` raised `StopIteration`".

        A method may end at a failed point (one whose gradient failed after its value was
        taken, at a step too short to tell), or call itself converged at x0 when every point
        it tried after x0 failed. Then ``success`` is False, ``x`` is the best point evaluated
        (never a point that is not finite) and ``fun`` its value.
        """
        if self.stop_message is not None:
            result.success = False
            result.message = self.stop_message
        if not self.failures:
            return result
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
        elif np.array_equal(x, x0) and result.get("success"):
            result.success = False
            result.message = (
                f"every point tried after x0 failed ({self.failures} failed evaluations under "
                f"error_handling='continue'); x is x0. The method's own message: {result.get('message', '')}"
            )
        return result

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
            for observer in observers:
                observer.iteration(self.nit, self._x, f, self._g, counters)

        return record

    # -- what scipy calls -----------------------------------------------------------
    def start(self, x0: np.ndarray, with_gradient: bool) -> None:
        """Evaluate at x0 the way the method will first ask, so a failure shows before it starts.

        x0 must evaluate whatever the error policy: an exception is raised as it is. Under
        'continue', a value (or, ``with_gradient``, a gradient) that is not finite at x0 is a
        ValueError, since there is no earlier point to back off to.
        """
        policy, self.error_handling = self.error_handling, "raise"
        try:
            f, g = self.value_and_grad(x0) if with_gradient else (self.value(x0), None)
        finally:
            self.error_handling = policy
        if policy != "continue":
            return
        if not math.isfinite(f):
            raise ValueError(
                f"fun is {f} at x0; error_handling='continue' needs a finite value at x0 to back off "
                "to. Start from a point where fun is finite."
            )
        if g is not None and not np.isfinite(g).all():
            index = int(np.flatnonzero(~np.isfinite(g))[0])
            raise ValueError(
                f"the gradient of fun is not finite at x0 (it is {g[index]} at {self.spec.element_name(index)}); "
                "error_handling='continue' needs a finite value and gradient at x0 to back off to. "
                "Start from a point where fun is differentiable."
            )

    def value(self, x: Any) -> float:
        x = as_flat_float64(x)
        if self._is_cached(x):
            return self._f
        if self.error_handling == "continue" and self.differentiable:
            # the gradient with the value: a point whose gradient fails is failed before the
            # method has its value
            return self.value_and_grad(x)[0]
        return self._value_only(x)

    def _value_only(self, x: np.ndarray) -> float:
        f = self._attempt("the objective", x, self._evaluate_value, x)
        self.counters.nfev += 1
        if self.error_handling == "continue" and (f is None or not math.isfinite(f)):
            return self._fail(x)
        self._store(x, f, None)
        # the journal called here rather than through _report: one call fewer per evaluation
        if self.journal is not None:
            self.journal.add_evaluation("value", self._x, f, math.nan)
        if self._evaluation_observers:
            self._notify("value", self._x, f, None)
        return f

    def value_and_grad(self, x: Any) -> tuple[float, np.ndarray]:
        x = as_flat_float64(x)
        if self._is_cached(x):
            if self._g is None:
                self._gradient_only(x)
            return self._f, self._g
        if self.user_gradient is not None:
            self._value_only(x)
            if self._g is None:  # a failed point has its zero gradient already
                self._gradient_only(x, may_fail=True)
            return self._f, self._g
        out = self._attempt("the objective and its gradient", x, self._evaluate_gradient, x)
        self.counters.nfev += 1
        self.counters.njev += 1
        if self.error_handling == "continue" and (out is None or not _all_finite(out[0], out[1])):
            return self._fail(x), self._g
        f, g = out[0], out[1]
        norm = out[2] if self.journal is not None else math.nan
        self._store(x, f, g, norm)
        if self.journal is not None:
            self.journal.add_evaluation("value_and_gradient", self._x, f, norm)
        if self._evaluation_observers:
            self._notify("value_and_gradient", self._x, f, g)
        return f, g

    def _gradient_only(self, x: np.ndarray, may_fail: bool = False) -> None:
        """Compute the gradient at the cached point x (its value is known already).

        ``may_fail``: the method does not have the value yet, so under 'continue' a gradient
        that fails or is not finite makes x a failed point.
        """
        may_fail = may_fail and self.error_handling == "continue"
        run = self._attempt if may_fail else self._run
        if self.user_gradient is not None:
            g = run("the user-supplied jac", x, self.user_gradient, x)
        elif self._linearize is not None:
            g = run("the gradient", x, self._value_grad_linearized, x)
            g = None if g is None else g[1]
        else:
            g = run("the gradient", x, self._value_and_grad, x)
            g = None if g is None else g[1]
        self.counters.njev += 1
        if may_fail and (g is None or not np.isfinite(g).all()):
            self._fail(x)
            return
        self._g = g
        if self.journal is not None:
            self._g_norm = grad_norm(g)
        if self.reporting:
            self._report("gradient", self._x, self._f, g, self._g_norm)

    def _value_grad_linearized(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g, self._hvp = self._linearize(x)
        self._hvp_x = x.copy()
        return f, g

    def gradient(self, x: Any) -> np.ndarray:
        return self.value_and_grad(x)[1]

    def fused_value(self, x: Any) -> float:
        """The value, with the gradient computed in the same call and kept for
        :meth:`gradient`: for a method that asks for the gradient after every value."""
        return self.value_and_grad(x)[0]

    def hessp(self, x: Any, p: Any) -> np.ndarray:
        x = as_flat_float64(x)
        p = as_flat_float64(p)
        self.counters.nhvp += 1
        if self.reporting:
            self._report("hvp", x, math.nan, None)
        if self.is_failed(x):
            return np.zeros_like(p)
        if self.user_hessp is not None:
            return self._curvature(self._attempt("the user-supplied hessp", x, self.user_hessp, x, p), p.shape)
        if self._hvp is None or not np.array_equal(x, self._hvp_x):
            self._hvp = self._attempt("a Hessian-vector product", x, self.functions.hvp_at, x)
            if self._hvp is None:
                return np.zeros_like(p)
            self._hvp_x = x.copy()
        return self._curvature(self._attempt("a Hessian-vector product", x, self._hvp, p), p.shape)

    def _curvature(self, value: Any, shape: tuple) -> np.ndarray:
        """Under 'continue', curvature that fails or is not finite counts as zero: the
        method's own safeguard (ratio test, line search) still checks every step."""
        if self.error_handling == "raise":
            return value
        if value is None:
            return np.zeros(shape)
        return np.nan_to_num(np.asarray(value, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)

    def hessian(self, x: Any) -> np.ndarray:
        x = as_flat_float64(x)
        if self._hess is not None and np.array_equal(x, self._hess_x):
            return self._hess
        if not self._is_cached(x):
            # trust-exact asks for the Hessian at a trial point before its value, which it asks
            # next: taking the value first costs nothing more, lets a failed point be known
            # before its curvature, and lets a closure's run serve both.
            self.value(x)
        if self.is_failed(x):
            return np.zeros((x.size, x.size))
        source = self.user_hessian or self.functions.hessian
        what = "the user-supplied hess" if self.user_hessian else "the Hessian"
        self._hess = np.asarray(self._curvature(self._attempt(what, x, source, x), (x.size, x.size)), dtype=np.float64)
        self._hess_x = x.copy()
        self.counters.nhev += 1
        if self.reporting:
            self._report("hessian", x, math.nan, None)
        return self._hess


def _with_norm(value_and_grad: Callable[[np.ndarray], tuple]) -> Callable[[np.ndarray], tuple]:
    """``value_and_grad`` returning the gradient's norm as well."""

    def evaluate(x: np.ndarray) -> tuple[float, np.ndarray, float]:
        f, g = value_and_grad(x)
        return f, g, grad_norm(g)

    return evaluate


def _all_finite(f: Any, g: Any) -> bool:
    return math.isfinite(f) and bool(np.isfinite(g).all())
