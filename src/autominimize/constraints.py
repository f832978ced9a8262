"""Constraints written in the framework, turned into scipy constraints with exact Jacobians.

Accepted: a dict or a list of dicts ``{'type': 'eq'|'ineq', 'fun': c, 'jac'?, 'args'?}``
(plus autograd-minimize's ``'use_autograd'``, ``'lb'``, ``'ub'``, ``'keep_feasible'`` keys),
``scipy.optimize.NonlinearConstraint`` whose ``fun`` takes the parameter structure, and
``scipy.optimize.LinearConstraint`` over the flat parameter vector. ``c`` takes the same
parameter structure as the objective and may return a scalar, a vector or any structure of
arrays (flattened in order).

With ``error_handling='continue'``, a constraint that raises or returns NaN at a trial point
is reported as violated there: its values are ``-inf`` where the constraint has a finite
lower bound (every ``'ineq'`` and ``'eq'`` dict) and ``+inf`` elsewhere, its Jacobian zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy.optimize import LinearConstraint, NonlinearConstraint

# scipy's own finite differences for constraints, with its step signs and rounding, so that
# 'use_autograd': False and a user Jacobian's Hessian give what scipy gives; its public
# approx_fprime takes neither a known value nor the 3-point scheme.
from scipy.optimize._numdiff import approx_derivative

from . import numdiff
from .backends.base import VectorFunctions, as_flat_float64, configure_numdiff
from .params import ParamSpec
from .problem import VectorObjective

__all__ = ["ConstraintFunction", "normalize_constraints", "ConstraintError"]

_DICT_KEYS = {"type", "fun", "jac", "args", "use_autograd", "lb", "ub", "keep_feasible"}


class ConstraintError(ValueError):
    """A constraint that cannot be used as given."""


class ConstraintFunction(VectorObjective):
    """One constraint on the flat vector (a :class:`~autominimize.problem.VectorObjective`).

    On top of the vector objective: ``lower`` and ``upper``, checked against the number of
    values at the first evaluation; a failed point violates them; ``hessian(x, weights)``
    for trust-constr; ``finite_differences``: scipy's '2-point' Jacobian of the values.
    ``nfev`` counts the evaluations scipy asks for and those of ``finite_differences``, not
    the backend's own differences (``res.constraint_evaluations`` reports it so).
    """

    counts_extra_evaluations = False
    #: a failed point's values are at the constraint's bounds rather than infinite (trust-constr,
    #: whose objective is failed at such a point, solves with the values there before it rejects it)
    finite_failed_values = False

    def __init__(
        self,
        functions: VectorFunctions,
        spec: ParamSpec,
        name: str,
        *,
        user_jacobian: Callable[[np.ndarray], Any] | None = None,
        finite_differences: bool = False,
        lower: Any = 0.0,
        upper: Any = np.inf,
        bounds: tuple[np.ndarray, np.ndarray] | None = None,
        error_handling: str = "raise",
    ) -> None:
        super().__init__(
            functions,
            spec,
            name=name,
            user_jacobian=user_jacobian,
            jac_name="the constraint's jac",
            scheme="2-point" if finite_differences else None,
            bounds=bounds,
            error_handling=error_handling,
        )
        self.lower = lower
        self.upper = upper

    @property
    def finite_differences(self) -> bool:
        return self.scheme is not None

    def _check_first(self, values: np.ndarray) -> None:
        """lb and ub hold one number, or one per value of the constraint."""
        m = values.size
        for label, limit in (("lb", self.lower), ("ub", self.upper)):
            if np.size(limit) not in (1, m):
                raise ConstraintError(
                    f"{self.name}: {label} has shape {np.shape(limit)} but the constraint function returns "
                    f"{m} values; give {label} as one number or {m} numbers."
                )

    def failed_values(self, m: int) -> np.ndarray:
        """Values outside the constraint's bounds: -inf where it has a lower bound (with
        :attr:`finite_failed_values`, the bound itself, or 0 where it has none)."""
        lower = np.broadcast_to(np.asarray(self.lower, dtype=np.float64), (m,))
        if not self.finite_failed_values:
            return np.where(np.isfinite(lower), -np.inf, np.inf)
        upper = np.broadcast_to(np.asarray(self.upper, dtype=np.float64), (m,))
        return np.where(np.isfinite(lower), lower, np.where(np.isfinite(upper), upper, 0.0))

    def fails_at(self, x: np.ndarray) -> bool:
        """Whether the constraint fails at x (evaluated there once, as the method would)."""
        self.value(x)
        return self.is_failed(x)

    def _differences(self, x: np.ndarray, values: np.ndarray) -> np.ndarray:
        try:
            jac = approx_derivative(self.value_uncached, x, f0=values, bounds=self._box)
        except Exception:
            if self.error_handling != "continue":
                raise
            # scipy's differences cannot step around a point where the constraint fails: ours
            # mirror it to the other side of x, as the backends' differences do
            with numdiff.Evaluator(tolerate_failures=True) as evaluator:
                jac, _ = numdiff.approx_jacobian(self.value_uncached, x, f0=values, bounds=self.bounds, evaluator=evaluator)
        return np.atleast_2d(jac).reshape(values.size, x.size)

    @property
    def _box(self) -> tuple[Any, Any]:
        """The solve's bounds, which scipy's differences stay within (as scipy's own do)."""
        return self.bounds if self.bounds is not None else (-np.inf, np.inf)

    def hessian(self, x: Any, weights: Any) -> np.ndarray:
        """The Hessian of ``weights @ c(x)`` (the constraint's part of trust-constr's Lagrangian).

        With a user-supplied Jacobian it is the central difference of ``weights @ J(x)``: one
        level of differencing on the user's exact derivative.
        """
        x = as_flat_float64(x)
        w = as_flat_float64(weights)
        self.counters.nhev += 1
        if self.is_failed(x):
            return np.zeros((x.size, x.size))
        try:
            return self._weighted_hessian(x, w)
        except Exception:
            # under 'continue', curvature that cannot be formed at a valid point (its differences
            # reach where the constraint fails) is zero curvature and a failed evaluation
            if self.error_handling != "continue":
                raise
            self.failures += 1
            return np.zeros((x.size, x.size))

    def _weighted_hessian(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        if self.user_jacobian is None:
            return self._run(x, "the Hessian", self.functions.weighted_hessian, x, w)
        m = self.value(x).size

        def weighted_gradient(z: np.ndarray) -> np.ndarray:
            return w @ self.user_jacobian_at(z, m)

        hess = self._run(x, "the Hessian", approx_derivative, weighted_gradient, x, method="3-point", bounds=self._box)
        return 0.5 * (hess + hess.T)


def _as_list(constraints: Any) -> list:
    if constraints is None:
        return []
    if isinstance(constraints, (dict, LinearConstraint, NonlinearConstraint)):
        return [constraints]
    if isinstance(constraints, (list, tuple)):
        return list(constraints)
    raise ConstraintError(
        f"constraints must be a dict, a LinearConstraint, a NonlinearConstraint, or a list of them; got {type(constraints).__name__}."
    )


def normalize_constraints(
    constraints: Any,
    method: str,
    spec: ParamSpec,
    compile_vector: Callable[[Callable, tuple], VectorFunctions],
    make_call: Callable[[Callable, tuple], Callable],
    error_handling: str = "raise",
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[list, list[ConstraintFunction]]:
    """scipy constraint objects for ``method`` and the ConstraintFunctions behind them.

    ``compile_vector(fun, args)`` compiles a constraint with the objective's backend;
    ``make_call(fun, args)`` gives a function of the flat vector that calls a user-supplied
    derivative with the parameter structure in the backend's array type. Finite differences
    of a constraint stay within ``bounds`` (the solve's flat ``(lower, upper)``), as scipy's do.
    """
    context = _Context(method, spec, compile_vector, make_call, error_handling, bounds)
    items = _as_list(constraints)
    scipy_constraints: list = []
    functions: list[ConstraintFunction] = []
    for index, item in enumerate(items):
        where = f"constraints[{index}]" if len(items) > 1 or isinstance(constraints, (list, tuple)) else "constraints"
        if isinstance(item, LinearConstraint):
            scipy_constraints.append(_checked_linear(item, where, spec.size))
            continue
        if isinstance(item, NonlinearConstraint):
            scipy_constraint, function = _nonlinear(item, where, context)
        elif isinstance(item, dict):
            scipy_constraint, function = _from_dict(item, where, context)
        else:
            raise ConstraintError(f"{where} is a {type(item).__name__}; each constraint must be a dict, a LinearConstraint or a NonlinearConstraint.")
        scipy_constraints.append(scipy_constraint)
        functions.append(function)
    return scipy_constraints, functions


@dataclass(frozen=True)
class _Context:
    """What every constraint of one solve is compiled with (see :func:`normalize_constraints`)."""

    method: str
    spec: ParamSpec
    compile_vector: Callable[[Callable, tuple], VectorFunctions]
    make_call: Callable[[Callable, tuple], Callable]
    error_handling: str
    bounds: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def needs_jacobian(self) -> bool:
        return self.method in ("slsqp", "trust-constr")

    def function(self, fun: Any, args: tuple, user_jac: Any, use_autograd: bool, where: str, lower: Any, upper: Any) -> ConstraintFunction:
        if not callable(fun):
            raise ConstraintError(f"{where}: the constraint function must be callable; got {type(fun).__name__}.")
        # the NumPy backend's differences: within the bounds, failed points mirrored under 'continue'
        evaluator = numdiff.Evaluator(tolerate_failures=self.error_handling == "continue")
        functions = configure_numdiff(self.compile_vector(fun, args), self.bounds, evaluator)
        if user_jac is not None and not callable(user_jac):
            raise ConstraintError(f"{where}['jac'] must be a callable taking the parameters; got {user_jac!r}.")
        return ConstraintFunction(
            functions,
            self.spec,
            where,
            user_jacobian=None if user_jac is None else self.make_call(user_jac, args),
            finite_differences=not use_autograd,
            lower=lower,
            upper=upper,
            bounds=self.bounds,
            error_handling=self.error_handling,
        )


def _check_limits(lb: Any, ub: Any, where: str) -> None:
    """Limits some value can meet: no NaN, lb <= ub, no lb of +inf nor ub of -inf (scipy
    runs such a constraint to an infeasible end without saying why)."""
    try:
        lb, ub = np.broadcast_arrays(np.asarray(lb, dtype=np.float64), np.asarray(ub, dtype=np.float64))
    except (TypeError, ValueError):
        raise ConstraintError(f"{where}: lb and ub must be numbers or arrays of numbers of one shape; got {lb!r} and {ub!r}.") from None
    lb, ub = lb.reshape(-1), ub.reshape(-1)
    for name, limits, free in (("lb", lb, "-inf for no lower bound"), ("ub", ub, "+inf for no upper bound")):
        if np.isnan(limits).any():
            raise ConstraintError(f"{where}: {name} contains NaN; use {free}.")
    problems = [
        (np.flatnonzero(lb > ub), lambda i: f"lb {lb[i]} is greater than ub {ub[i]} (at value {i})"),
        (np.flatnonzero(lb == np.inf), lambda i: f"lb is +inf (at value {i}), which no value reaches"),
        (np.flatnonzero(ub == -np.inf), lambda i: f"ub is -inf (at value {i}), which no value reaches"),
    ]
    for found, text in problems:
        if found.size:
            raise ConstraintError(f"{where}: {text(int(found[0]))}; no point can satisfy this constraint.")


def _checked_linear(item: LinearConstraint, where: str, n: int) -> LinearConstraint:
    if np.shape(item.A)[-1] != n:
        raise ConstraintError(
            f"{where}: LinearConstraint.A has {np.shape(item.A)[-1]} columns but there are {n} parameters (the flat vector of x0's leaves in order)."
        )
    _check_limits(item.lb, item.ub, where)
    return item


def _nonlinear(item: NonlinearConstraint, where: str, context: _Context) -> tuple[NonlinearConstraint, ConstraintFunction]:
    """A NonlinearConstraint over the parameter structure, as one over the flat vector."""
    user_jac = item.jac if callable(item.jac) else None
    _check_limits(item.lb, item.ub, where)
    function = context.function(item.fun, (), user_jac, True, where, item.lb, item.ub)
    hess = function.hessian if context.method == "trust-constr" else item.hess
    return NonlinearConstraint(function.value, item.lb, item.ub, jac=function.jacobian, hess=hess, keep_feasible=item.keep_feasible), function


def _from_dict(item: dict, where: str, context: _Context) -> tuple[Any, ConstraintFunction]:
    """A constraint dict: a scipy dict for the old-style methods, a NonlinearConstraint for
    trust-constr or where it gives ``lb`` / ``ub``."""
    unknown = set(item) - _DICT_KEYS
    if unknown:
        raise ConstraintError(f"{where} has unknown keys {sorted(unknown)}; accepted keys are {sorted(_DICT_KEYS)}.")
    if "fun" not in item or not callable(item["fun"]):
        raise ConstraintError(f"{where} needs a callable 'fun' taking the parameters.")
    bounded = "lb" in item or "ub" in item
    kind = item.get("type")
    if not bounded and "type" not in item:  # as scipy: no kind is taken for granted
        raise ConstraintError(f"{where} needs 'type': 'eq' (c(x) == 0) or 'ineq' (c(x) >= 0), or 'lb' and/or 'ub' limits.")
    if (kind is not None or not bounded) and kind not in ("eq", "ineq"):
        raise ConstraintError(f"{where}['type'] is {kind!r}; use 'eq' (c(x) == 0) or 'ineq' (c(x) >= 0).")
    if bounded:
        lb, ub = item.get("lb", -np.inf), item.get("ub", np.inf)
        _check_limits(lb, ub, where)
    else:
        lb, ub = 0.0, (0.0 if kind == "eq" else np.inf)
    args = item.get("args", ())
    if not isinstance(args, (tuple, list)):
        raise ConstraintError(f"{where}['args'] must be a tuple of extra arguments, passed as fun(x, *args); got {type(args).__name__}.")
    args = tuple(args)
    function = context.function(item["fun"], args, item.get("jac"), item.get("use_autograd", True), where, lb, ub)
    if context.method == "trust-constr" or bounded:
        jac = function.jacobian if context.needs_jacobian else "2-point"
        hess = function.hessian if context.method == "trust-constr" else None
        return NonlinearConstraint(function.value, lb, ub, jac=jac, hess=hess, keep_feasible=item.get("keep_feasible", False)), function
    entry = {"type": kind, "fun": function.value}
    if context.needs_jacobian:
        entry["jac"] = function.jacobian
    return entry, function
