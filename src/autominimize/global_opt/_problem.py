"""The flat problem every global optimizer works on, and its local solves.

A :class:`GlobalProblem` is the flat view scipy's global optimizers see of the user's
problem, built on the shared scalar objective (:class:`~autominimize.problem.Objective`):
single values and batches of values through it (its cache, counters, best point and error
policy), and local solves that run through
``am.minimize`` with exact derivatives, their counts kept in a second
:class:`~autominimize.problem.Counters`. ``am.basinhopping`` and friends build one from a
function (:func:`~._build.build_problem`); the torch integration builds one from a closure.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ..drivers.fixed_variables import FixedVariables
from ..drivers.methods import CUSTOM_METHOD, METHODS, method_name
from ..params import ParamSpec
from ..problem import Counters, Objective

__all__ = ["GlobalProblem", "LocalSolver", "local_kwargs", "takes_bounds", "flat_result", "structured_result"]

#: ``am.minimize`` arguments a local solve may be given (``minimizer_kwargs``, ``polish``).
LOCAL_KEYS = ("method", "jac", "hess", "hessp", "bounds", "constraints", "tol", "callback", "options", "hvp_type")


class GlobalProblem:
    """The user's problem as flat float64 vectors, with counted evaluations.

    Parameters
    ----------
    spec
        The parameter structure.
    objective
        Single and batched evaluations (cache, counters, best point, the failing point
        attached to errors); its ``batched`` is None when the problem cannot batch.
    local_solve
        ``local_solve(x0, bounds, kwargs)``: one local minimization from the flat ``x0`` with
        flat ``(lb, ub)`` bounds (or None) and ``am.minimize`` keyword arguments; returns a
        result with ``x`` in the parameter structure.
    backend, precision
        Reported on the results.
    context
        Held around a whole global solve (JAX enables float64 in it).
    remote
        A picklable ``remote(x) -> float`` for other processes, or None.
    make_constraints
        ``make_constraints(constraints, method)``: the user's constraints as scipy constraint
        objects on the flat vector for ``method`` (``normalize_constraints``), or None.
    """

    def __init__(
        self,
        spec: ParamSpec,
        objective: Objective,
        local_solve: Callable[[np.ndarray, tuple | None, dict], so.OptimizeResult],
        *,
        backend: str,
        precision: str,
        context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        remote: Callable[[np.ndarray], float] | None = None,
        make_constraints: Callable[[Any, str], list] | None = None,
    ):
        self.spec = spec
        self.n = spec.size
        self.objective = objective
        self._local_solve = local_solve
        self.backend = backend
        self.precision = precision
        self.context = context
        self.remote = remote
        self._make_constraints = make_constraints
        self.local_counters = Counters()
        self.n_local = 0
        self.best_local: tuple[Any, float] | None = None  # (x in x0's structure, fun) of all local solves
        self.fixed: FixedVariables | None = None

    # -- fixed variables --------------------------------------------------------------
    def fix_variables(self, bounds: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """For a scipy method that refuses a bound with lower = upper: from here on it sees
        the free variables only, and the box it gets back is theirs.

        Single points, boxes, local solves and :meth:`restore` then take either the free
        variables or the full vector (they differ in size), and always evaluate the full
        vector. (Differential evolution, the one batched method, takes a fixed variable as
        it is.)
        """
        self.fixed = FixedVariables.of(bounds[0], bounds)
        if self.fixed is None:
            return bounds
        self.n = int(np.count_nonzero(self.fixed.free))
        return self.fixed.bounds

    def full(self, x: Any) -> np.ndarray:
        """The full flat vector of ``x``, the free variables or the full vector already."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if self.fixed is not None and x.size != self.spec.size:
            return self.fixed.embed(x)
        return x

    # -- evaluations ----------------------------------------------------------------
    def value(self, x: Any) -> float:
        return self.objective.value(x if self.fixed is None else self.full(x))

    def values(self, points: np.ndarray) -> np.ndarray:
        """Values at the rows of ``points`` (full vectors) in one batched call (see
        :meth:`Objective.values`)."""
        return self.objective.values(points)

    def count(self, evaluations: int) -> None:
        """Record evaluations made elsewhere (other processes)."""
        self.objective.counters.nfev += evaluations

    def local(self, x0: np.ndarray, bounds: tuple[np.ndarray, np.ndarray] | None, kwargs: dict) -> so.OptimizeResult:
        """One local solve through ``am.minimize``; its counts are added to the problem's."""
        x0 = self.full(x0)
        if bounds is not None:
            bounds = (self.full(bounds[0]), self.full(bounds[1]))
            x0 = np.clip(x0, bounds[0], bounds[1])  # a random step may leave the box
        try:
            result = self._local_solve(x0, bounds, kwargs)
        except Exception:
            if not self._start_failed(x0):
                raise
            result = so.OptimizeResult(
                x=x0,
                fun=np.inf,
                success=False,
                status=-1,
                nit=0,
                message="the local solve's start failed under error_handling='continue' (fun raised or is not finite there)",
            )
        self.record_local(result)
        return result

    def _start_failed(self, x0: np.ndarray) -> bool:
        """Whether a local solve could not start because fun fails at ``x0`` under
        error_handling='continue' (a random step may land there; the method then rejects it)."""
        return self.objective.error_handling == "continue" and not np.isfinite(self.objective.value(x0))

    def record_local(self, result: so.OptimizeResult) -> None:
        """Add a local solve's counts (made here or in another process) to the problem's."""
        self.n_local += 1
        fun = result.get("fun")
        if fun is not None and np.isfinite(fun) and (self.best_local is None or fun < self.best_local[1]):
            self.best_local = (result.x, float(fun))
        for name in Counters.__slots__:
            setattr(self.local_counters, name, getattr(self.local_counters, name) + int(result.get(name, 0) or 0))

    def scipy_constraints(self, constraints: Any, method: str) -> list:
        """The user's constraints on the flat vector, as ``method`` takes them."""
        if not constraints:
            return []
        if self._make_constraints is None:
            raise ValueError("constraints are not supported here; use am.minimize's constraints in the local solves.")
        return self._make_constraints(constraints, method)

    # -- structure ------------------------------------------------------------------
    def restore(self, x: Any) -> Any:
        return self.spec.restore(self.full(x))

    def flat(self, tree: Any, name: str = "x") -> np.ndarray:
        """The flat vector scipy sees of ``tree``: its free variables when some are fixed."""
        flat = self.spec.flatten(tree, name)
        return flat if self.fixed is None else flat[self.fixed.free]

    def counts(self) -> dict[str, int]:
        own = self.objective.counters.as_dict()
        return {name: own[name] + getattr(self.local_counters, name) for name in own}


# -- local solves as a scipy custom method -----------------------------------------------
def local_kwargs(kwargs: dict | None, where: str, allowed: tuple[str, ...] = LOCAL_KEYS) -> dict:
    """Validated ``am.minimize`` keyword arguments for local solves."""
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"{where} must be a dict of am.minimize arguments; got {type(kwargs).__name__}.")
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(f"{where} has unknown key(s) {unknown}; it accepts {', '.join(allowed)}.")
    return dict(kwargs)


def takes_bounds(kwargs: dict) -> bool:
    """Whether the local method of ``kwargs`` can use bounds (scipy's default method can)."""
    method = kwargs.get("method")
    if callable(method):
        return CUSTOM_METHOD.bounds
    return METHODS[method_name(method, True, bool(kwargs.get("constraints")))].bounds


class LocalSolver:
    """A custom ``scipy.optimize.minimize`` method that solves locally with ``am.minimize``.

    scipy's global optimizers call ``minimize(func, x, method=solver, ...)``; the solver
    ignores scipy's flat ``func`` and minimizes the user's function from ``x`` with exact
    derivatives. With ``scipy_bounds`` it restricts the solve to the box scipy passes (shgo's
    local boxes, differential evolution's fixed integers), when the method takes bounds.
    """

    def __init__(self, problem: GlobalProblem, kwargs: dict, bounds: tuple | None = None, *, scipy_bounds: bool = False):
        self.problem = problem
        self.kwargs = kwargs
        self.bounds = bounds
        self.scipy_bounds = scipy_bounds and takes_bounds(kwargs)
        self.results: list[so.OptimizeResult] = []

    @staticmethod
    def lower() -> str:
        # shgo looks the method's name up with ``method.lower()``; "_custom" is the name
        # scipy itself gives a callable method.
        return "_custom"

    def __call__(self, fun: Any, x0: Any, *_: Any, bounds: Any = None, **__: Any) -> so.OptimizeResult:
        box = self.bounds
        if self.scipy_bounds and bounds is not None:
            box = _flat_box(bounds, self.problem.n)
        result = self.problem.local(np.asarray(x0, dtype=np.float64).reshape(-1), box, self.kwargs)
        self.results.append(result)
        return flat_result(result, self.problem)


def _flat_box(bounds: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(bounds, so.Bounds):
        lb, ub = bounds.lb, bounds.ub
    else:
        pairs = np.array([[-np.inf if lo is None else lo, np.inf if hi is None else hi] for lo, hi in bounds], dtype=np.float64)
        lb, ub = pairs[:, 0], pairs[:, 1]
    return np.broadcast_to(np.asarray(lb, np.float64), (n,)).copy(), np.broadcast_to(np.asarray(ub, np.float64), (n,)).copy()


def flat_result(result: so.OptimizeResult, problem: GlobalProblem) -> so.OptimizeResult:
    """A copy of a local result with flat ``x`` and ``jac`` as scipy sees the problem."""
    flat = so.OptimizeResult(result)
    flat.x = problem.flat(result.x)
    if result.get("jac") is not None:
        try:
            flat.jac = problem.flat(result.jac, "jac")
        except (ValueError, TypeError):  # trust-constr's jac: the constraint Jacobians
            pass
    return flat


def structured_result(result: so.OptimizeResult, spec: ParamSpec) -> so.OptimizeResult:
    """A local result with flat ``x`` (and ``jac``) back in x0's structure."""
    out = so.OptimizeResult(result)
    out.x = spec.restore(np.asarray(result.x, dtype=np.float64).reshape(-1))
    jac = result.get("jac")
    if isinstance(jac, np.ndarray) and jac.ndim == 1 and jac.size == spec.size:
        out.jac = spec.restore(jac)
    return out
