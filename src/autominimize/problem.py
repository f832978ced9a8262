"""The flat objective scipy sees: one-slot cache, evaluation counters, error context.

Every evaluation of the user's function goes through :class:`Objective`, so this is where
evaluations are counted and where the point of a failure is attached to the exception.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .backends.base import ScalarFunctions, as_flat_float64
from .params import ParamSpec

__all__ = ["Objective", "Counters"]


class Counters:
    """Evaluation counts: value, gradient, Hessian, Hessian-vector product."""

    __slots__ = ("nfev", "njev", "nhev", "nhvp")

    def __init__(self) -> None:
        self.nfev = self.njev = self.nhev = self.nhvp = 0

    def as_dict(self) -> dict[str, int]:
        return {"nfev": self.nfev, "njev": self.njev, "nhev": self.nhev, "nhvp": self.nhvp}


def attach_point(exc: BaseException, spec: ParamSpec, x: np.ndarray, what: str) -> None:
    """Record on ``exc`` where the user's function failed (once, innermost wins)."""
    if getattr(exc, "autominimize_x", None) is not None:
        return
    try:
        exc.autominimize_x = spec.restore(x)
    except Exception:  # the point is context, never a reason to hide the original error
        exc.autominimize_x = np.array(x)
    if hasattr(exc, "add_note"):
        exc.add_note(
            f"autominimize: raised while computing {what} at the point stored in "
            "exception.autominimize_x"
        )


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
        uses_hvp: bool = False,
        observers: list | None = None,
    ) -> None:
        self.functions = functions
        self.observers = observers or []
        self.nit = 0
        # With HVPs to follow, a backend that can linearize while it computes the gradient
        # (JAX) does both in one call.
        self._linearize = None
        if uses_hvp and hessp is None:
            self._linearize = getattr(functions, "value_grad_and_hvp", None)
        self._evaluate_value = functions.value
        if not differentiable:
            self._evaluate_value = getattr(functions, "value_without_gradient", functions.value)
        self.spec = spec
        self.user_gradient = gradient
        self.user_hessian = hessian
        self.user_hessp = hessp
        self.counters = Counters()
        self._x: np.ndarray | None = None
        self._key: bytes | None = None
        self._f: float | None = None
        self._g: np.ndarray | None = None
        self._hvp_x: np.ndarray | None = None
        self._hvp: Callable[[np.ndarray], np.ndarray] | None = None
        self._hess_x: np.ndarray | None = None
        self._hess: np.ndarray | None = None
        self.best_x: np.ndarray | None = None
        self.best_f = np.inf

    # -- bookkeeping -----------------------------------------------------------------
    # Points are compared by their bytes: cheaper than np.array_equal, and a point that
    # differs only in the sign of a zero is merely evaluated again.
    def known_gradient(self, x: np.ndarray) -> np.ndarray | None:
        """The gradient at x if it has been computed already, else None."""
        return self._g if self._is_cached(x) else None

    def _is_cached(self, x: np.ndarray) -> bool:
        return self._key is not None and x.tobytes() == self._key

    def _store(self, x: np.ndarray, f: float, g: np.ndarray | None) -> None:
        self._x = x.copy()
        self._key = self._x.tobytes()
        self._f = f
        self._g = g
        if f < self.best_f:
            self.best_f = f
            self.best_x = self._x

    def _run(self, what: str, x: np.ndarray, function: Callable, *arguments: Any) -> Any:
        """Call a backend or user function; count extra (finite-difference) evaluations and
        attach the point to any exception."""
        before = self.functions.extra_evaluations
        try:
            return function(*arguments)
        except Exception as exc:
            attach_point(exc, self.spec, x, what)
            raise
        finally:
            extra = self.functions.extra_evaluations - before
            if extra:
                self.counters.nfev += extra
                self._notify("finite-difference", x, float("nan"), None, extra)

    def _notify(self, kind: str, x: np.ndarray, f: float, g: np.ndarray | None, count: int = 1) -> None:
        for observer in self.observers:
            observer.evaluation(kind, x, f, g, count)

    def report_iteration(self, x: Any, f: float | None = None) -> None:
        """The method accepted ``x`` as its next iterate: tell the observers."""
        self.nit += 1
        x = as_flat_float64(x)
        if f is None:
            f = self.value(x)
        for observer in self.observers:
            observer.iteration(self.nit, x, float(f), self.known_gradient(x), self.counters.as_dict())

    # -- what scipy calls -----------------------------------------------------------
    def value(self, x: Any) -> float:
        x = as_flat_float64(x)
        if self._is_cached(x):
            return self._f
        f = self._run("the objective", x, self._evaluate_value, x)
        self.counters.nfev += 1
        self._store(x, f, None)
        if self.observers:
            self._notify("value", x, f, None)
        return f

    def value_and_grad(self, x: Any) -> tuple[float, np.ndarray]:
        x = as_flat_float64(x)
        if self._is_cached(x):
            if self._g is None:
                self._g = self._gradient_only(x)
            return self._f, self._g
        if self.user_gradient is not None:
            f = self.value(x)
            self._g = self._gradient_only(x)
            return f, self._g
        if self._linearize is not None:
            f, g = self._run("the objective and its gradient", x, self._value_grad_linearized, x)
        else:
            f, g = self._run("the objective and its gradient", x, self.functions.value_and_grad, x)
        self.counters.nfev += 1
        self.counters.njev += 1
        self._store(x, f, g)
        if self.observers:
            self._notify("value_and_gradient", x, f, g)
        return f, g

    def _gradient_only(self, x: np.ndarray) -> np.ndarray:
        """The gradient at the cached point x (its value is known already)."""
        if self.user_gradient is not None:
            g = self._run("the user-supplied jac", x, self.user_gradient, x)
        elif self._linearize is not None:
            g = self._run("the gradient", x, self._value_grad_linearized, x)[1]
        else:
            g = self._run("the gradient", x, self.functions.value_and_grad, x)[1]
        self.counters.njev += 1
        if self.observers:
            self._notify("gradient", x, self._f, g)
        return g

    def _value_grad_linearized(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g, self._hvp = self._linearize(x)
        self._hvp_x = x.copy()
        return f, g

    def gradient(self, x: Any) -> np.ndarray:
        return self.value_and_grad(x)[1]

    def hessp(self, x: Any, p: Any) -> np.ndarray:
        x = as_flat_float64(x)
        p = as_flat_float64(p)
        self.counters.nhvp += 1
        if self.observers:
            self._notify("hvp", x, float("nan"), None)
        if self.user_hessp is not None:
            return self._run("the user-supplied hessp", x, self.user_hessp, x, p)
        if self._hvp is None or not np.array_equal(x, self._hvp_x):
            self._hvp = self._run("a Hessian-vector product", x, self.functions.hvp_at, x)
            self._hvp_x = x.copy()
        return self._run("a Hessian-vector product", x, self._hvp, p)

    def hessian(self, x: Any) -> np.ndarray:
        x = as_flat_float64(x)
        if self._hess is not None and np.array_equal(x, self._hess_x):
            return self._hess
        source = self.user_hessian or self.functions.hessian
        what = "the user-supplied hess" if self.user_hessian else "the Hessian"
        self._hess = np.asarray(self._run(what, x, source, x), dtype=np.float64)
        self._hess_x = x.copy()
        self.counters.nhev += 1
        if self.observers:
            self._notify("hessian", x, float("nan"), None)
        return self._hess
