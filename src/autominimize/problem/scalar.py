"""The flat scalar objective scipy sees: its evaluations under the error policy.

Every evaluation of the user's function goes through :class:`Objective`: single points (value,
gradient, Hessian-vector products, Hessian) and batches of points (:meth:`Objective.values`).
Its one-slot cache, counters, best point and failed points are kept by
:class:`~.scalar_bookkeeping.ScalarBookkeeping`, where the point of a failure is attached to
the exception. The error policy (``error_handling``) applies to all of them:

* ``'raise'`` (default): an exception from the user's function propagates with the point in
  ``exc.autominimize_x``; a NaN or infinite value is handed to the method unchanged.
* ``'continue'``: a point where the value or the gradient raises or is not finite is a
  *failed point*: its value is ``+inf`` and its gradient, Hessian-vector products and
  Hessian are zero. ``+inf`` fails every sufficient-decrease test, so line searches shorten
  the step and trust regions reject the step and shrink; the zero derivatives are never used
  by an accepted step, they only keep the method's arithmetic finite. The point is reported
  to the observers as a ``'failed'`` evaluation. So that a failed gradient is known before
  the method has the point's value, a method that uses the gradient gets value and gradient
  computed together under this policy. The first point the method asks for (x0 for scipy's
  methods) must have a finite value (and gradient, where the method uses one): there is no
  earlier point to back off to.

A backend that computed the value at a point before its derivative failed there (finite
differences) leaves it on the exception as ``autominimize_value`` (the point and the
value), so that the point still counts as the best evaluated.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable


import numpy as np

from ..backends.base import ScalarFunctions, as_flat_float64, grad_norm, offered
from ..errors import attach_point
from ..params import ParamSpec
from .scalar_bookkeeping import ScalarBookkeeping

if TYPE_CHECKING:
    from ..recording.history import History

__all__ = ["Objective"]

_FLOAT64 = np.dtype(np.float64)
_NAN = math.nan
_clock = time.perf_counter  # the journal's clock (History.start is read from it)


class Objective(ScalarBookkeeping):
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
    batched
        The backend's batched value (values at the rows of an ``(S, n)`` array in one call),
        for :meth:`values`; None where the objective cannot be evaluated on a batch.
    gradient_with_value
        Whether the functions compute the gradient with every value (the user's ``fun``
        returns both): a value asked for alone then keeps its gradient.
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
        batched: Callable[[np.ndarray], np.ndarray] | None = None,
        gradient_with_value: bool = False,
    ) -> None:
        if gradient is not None and hessian is None and hessp is None:  # NumPy: curvature by differences of jac
            functions = (offered(functions, "with_gradient") or (lambda _: functions))(self._gradient_for_curvature)
        super().__init__(functions, spec, journal, observers, error_handling)
        self.differentiable = differentiable
        self.batched = batched
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
        # value and gradient as the method asks for them: (f, g), or (f, g, |g|) from a backend
        # that computes the norm a journal records in its own call
        self._evaluate_gradient = self._value_grad_linearized if self._linearize is not None else self._value_and_grad
        with_norm = offered(functions, "value_grad_and_norm") if journal is not None and self._linearize is None else None
        self._norm_given = with_norm is not None
        self._evaluate_gradient = with_norm or self._evaluate_gradient
        self._evaluate_value = functions.value
        if not differentiable:
            self._evaluate_value = offered(functions, "value_without_gradient") or functions.value
        # a value asked for alone keeps the gradient that came with it, for the method's next
        # request at that point (counted and reported then, as computing it would be)
        self._gradient_with_value = gradient_with_value and differentiable and gradient is None
        self.user_gradient, self.user_hessian, self.user_hessp = gradient, hessian, hessp
        self._hvp_x: np.ndarray | None = None
        self._hvp: Callable[[np.ndarray], np.ndarray] | None = None
        self._hess_key: bytes | None = None  # the point of _hess, compared as the cache's points are
        self._hess: np.ndarray | None = None
        # the journal's rows, which each Hessian-vector product appends to itself
        self._append_row = journal.row_appender() if journal is not None else None
        self._probe_x0: np.ndarray | None = None  # x0 until the first evaluation, when start() armed the probe
        self.probe_failure: Exception | None = None
        self._gradient_path_checked = False

    # -- what scipy calls -----------------------------------------------------------
    @contextlib.contextmanager
    def evaluated_by(self, value: Callable[[np.ndarray], float], value_and_grad: Callable[[np.ndarray], tuple]) -> Iterator[None]:
        """Within the block, values come from ``value(x)`` and gradients from
        ``value_and_grad(x) -> (f, g)``, for a driver that computes the objective in one call
        with other functions (IPOPT on JAX: f with the constraints, ∇f with their Jacobian).
        The cache, the counters, the journal and the error policy stay the objective's.
        """
        saved = (self._evaluate_value, self._evaluate_gradient, self._value_and_grad, self._norm_given)
        self._evaluate_value, self._evaluate_gradient, self._value_and_grad, self._norm_given = value, value_and_grad, value_and_grad, False
        try:
            yield
        finally:
            self._evaluate_value, self._evaluate_gradient, self._value_and_grad, self._norm_given = saved

    def start(self, x0: np.ndarray) -> None:
        """Make the first evaluation the method asks for a probe, so a failure shows at once.

        The probe is wherever the method first asks (x0 for scipy's methods; IPOPT may ask
        first at x0 pushed inside the bounds), so no evaluation is spent where the method never
        asks. It is evaluated the way the method asks (value, or value and gradient) and must
        succeed whatever the error policy: an exception is raised as it is and kept in
        :attr:`probe_failure`. Under 'continue', a value (or a gradient, where computed) that
        is not finite there is a ValueError, since there is no earlier point to back off to.
        """
        self._probe_x0 = as_flat_float64(x0)

    def _probe(self, x: np.ndarray, gradient: bool) -> tuple[float, np.ndarray | None]:
        x0, self._probe_x0 = self._probe_x0, None
        policy, self.error_handling = self.error_handling, "raise"
        try:
            with_gradient = gradient or (policy == "continue" and self.differentiable)
            f, g = self.value_and_grad(x) if with_gradient else (self.value(x), None)
        except Exception as exc:
            self.probe_failure = exc
            raise
        finally:
            self.error_handling = policy
        if policy == "continue":
            self._check_probe(f, g, "x0" if x.tobytes() == x0.tobytes() else "the first point the method asked for")
        if g is not None and self.user_gradient is None:
            self._gradient_path_checked = True
            if not g.any():  # a call only for a zero gradient
                self._check_gradient_path(x)
        return f, g

    def value(self, x: Any) -> float:
        if type(x) is not np.ndarray or x.dtype is not _FLOAT64 or x.ndim != 1 or not x.flags.c_contiguous:
            x = as_flat_float64(x)  # a call fewer for what scipy hands over
        if self._probe_x0 is not None:
            return self._probe(x, gradient=False)[0]
        if x.tobytes() == self._key:
            return self._f
        if self.error_handling == "continue" and self.differentiable:
            # the gradient with the value: a point whose gradient fails is failed before the
            # method has its value
            return self.value_and_grad(x)[0]
        return self._value_only(x)

    def _value_only(self, x: np.ndarray) -> float:
        run = self._run if self.error_handling == "raise" else self._attempt  # _attempt's call saved
        if self._gradient_with_value:
            out = run("the objective", x, self._evaluate_gradient, x)
            f = None if out is None else out[0]
        else:
            f = run("the objective", x, self._evaluate_value, x)
        self.counters.nfev += 1
        if self.error_handling == "continue" and (f is None or not math.isfinite(f)):
            return self._fail(x)
        self._store(x, f, None)
        if self._gradient_with_value:
            self._spare_g = out[1]
        # the journal called here rather than through _report: one call fewer per evaluation
        if self.journal is not None:
            self.journal.add_evaluation("value", self._x, f, math.nan)
        if self._evaluation_observers:
            self._notify("value", self._x, f, None)
        return f

    def value_and_grad(self, x: Any) -> tuple[float, np.ndarray]:
        if type(x) is not np.ndarray or x.dtype is not _FLOAT64 or x.ndim != 1 or not x.flags.c_contiguous:
            x = as_flat_float64(x)  # a call fewer for what scipy hands over
        if self._probe_x0 is not None:
            return self._probe(x, gradient=True)
        if x.tobytes() == self._key:
            if self._g is None:
                self._gradient_only(x)
            return self._f, self._g
        if self.user_gradient is not None:
            self._value_only(x)
            if self._g is None:  # a failed point has its zero gradient already
                self._gradient_only(x, may_fail=True)
            return self._f, self._g
        if self.error_handling == "raise":  # _run written out: a call fewer per evaluation
            functions = self.functions
            before = functions.extra_evaluations
            try:
                out = self._evaluate_gradient(x)
            except BaseException as exc:
                self._raised(exc, "the objective and its gradient", x, before)
                raise
            if functions.extra_evaluations != before:
                self._count_extra(x, functions.extra_evaluations - before)
        else:
            out = self._attempt("the objective and its gradient", x, self._evaluate_gradient, x)
        self.counters.nfev += 1
        self.counters.njev += 1
        if self.error_handling == "continue" and (out is None or not (math.isfinite(out[0]) and np.isfinite(out[1]).all())):
            return self._fail(x), self._g
        f, g = out[0], out[1]
        if self.journal is None:
            self._store(x, f, g)
        else:
            norm = out[2] if self._norm_given else grad_norm(g)
            self._store(x, f, g, norm)
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
        if self._spare_g is not None:
            g = self._spare_g
        elif self.user_gradient is not None:
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
        if not self._gradient_path_checked and self.user_gradient is None:
            self._gradient_path_checked = True
            if not g.any():
                self._check_gradient_path(x)
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
        # scipy asks for the gradient at the point whose value it has just asked for
        if self._g is not None and type(x) is np.ndarray and x.dtype is _FLOAT64 and x.tobytes() == self._key:
            return self._g
        return self.value_and_grad(x)[1]

    def fused_value(self, x: Any) -> float:
        """The value, with the gradient computed in the same call and kept for
        :meth:`gradient`: for a method that asks for the gradient after every value."""
        return self.value_and_grad(x)[0]

    def values(self, points: np.ndarray) -> np.ndarray:
        """Values at the rows of ``points`` (shape ``(S, n)``) in one call of :attr:`batched`.

        The batch counts S evaluations and its best row is kept as the best point, as single
        evaluations are. Under 'raise' an exception propagates with the batch's first point
        attached. Under 'continue' a value that is not finite is +inf (a failed point), and a
        batch that raises is evaluated point by point, each failing point +inf.
        """
        points = np.ascontiguousarray(points, dtype=np.float64)
        out = self._attempt("a batch of objective values (first point shown)", points[0], self.batched, points)
        if out is None:  # a batch that raised under 'continue'
            return np.array([self.value(point) for point in points])
        out = np.asarray(out, dtype=np.float64).reshape(-1)
        self.counters.nfev += points.shape[0]
        if self.error_handling == "continue":
            finite = np.isfinite(out)
            self.failures += out.size - int(np.count_nonzero(finite))
            out = np.where(finite, out, np.inf)
        self._keep_best_of(points, out)
        if self.reporting:
            for point, value in zip(points, out):
                self._report("value" if math.isfinite(value) else "failed", point.copy(), float(value), None)
        return out

    def hessp(self, x: Any, p: Any) -> np.ndarray:
        if type(x) is not np.ndarray or x.dtype is not _FLOAT64 or x.ndim != 1 or not x.flags.c_contiguous:
            x = as_flat_float64(x)  # a call fewer for what scipy hands over
        if type(p) is not np.ndarray or p.dtype is not _FLOAT64 or p.ndim != 1 or not p.flags.c_contiguous:
            p = as_flat_float64(p)
        self.counters.nhvp += 1
        journal = self.journal
        if journal is not None:  # History.add_evaluation written out for a row without f
            journal.recorded += 1
            self._append_row(("hvp", _clock() - journal.start, _NAN, _NAN))
        if self._evaluation_observers:
            self._notify("hvp", x, math.nan, None)
        if self._failed and self.is_failed(x):
            return np.zeros_like(p)
        if self.user_hessp is not None:
            if self.error_handling == "raise":
                # _run without its count of extra evaluations, which a user's hessp never makes
                try:
                    out = self.user_hessp(x, p)
                except Exception as exc:
                    attach_point(exc, self.spec, x, "the user-supplied hessp")
                    raise
                self._product = (x, p, out)  # kept to be named if the method finds it not finite
                return out
            return self._curvature(self._attempt("the user-supplied hessp", x, self.user_hessp, x, p), p.shape)
        if self._hvp is None or not np.array_equal(x, self._hvp_x):
            self._hvp = self._attempt("a Hessian-vector product", x, self.functions.hvp_at, x)
            if self._hvp is None:
                return self._curvature(None, p.shape)
            self._hvp_x = x.copy()
        out = self._curvature(self._attempt("a Hessian-vector product", x, self._hvp, p), p.shape)
        self._product = (x, p, out)
        return out

    def _curvature(self, value: Any, shape: tuple) -> np.ndarray:
        """Under 'continue', curvature that fails or is not finite counts as zero: the
        method's own safeguard (ratio test, line search) still checks every step. It is a
        failed evaluation: with zero curvature a method may stop at once and call x0 converged."""
        if self.error_handling == "raise":
            return value
        if value is None:
            self.failures += 1
            return np.zeros(shape)
        value = np.asarray(value, dtype=np.float64)
        if np.isfinite(value).all():
            return value
        self.failures += 1
        return np.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0)

    def hessian(self, x: Any) -> np.ndarray:
        x = as_flat_float64(x)
        if x.tobytes() == self._hess_key:
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
        self._hess_key = x.tobytes()
        self.counters.nhev += 1
        if self.reporting:
            self._report("hessian", x, math.nan, None)
        return self._hess
