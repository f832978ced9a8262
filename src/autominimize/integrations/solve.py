"""One scipy solve over flat functions an integration built itself.

``am.minimize`` compiles a pure function of the parameters with a backend; the integrations
instead evaluate closures that read the framework's parameter objects. Both meet here at the
same layers: :class:`~autominimize.problem.Objective` (cache and counters), the method table,
bounds and constraint normalization, and :func:`~autominimize.drivers.scipy_local.run_minimize`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import scipy.optimize as so

from ..bounds import clip_to_bounds
from ..constraints import normalize_constraints
from ..drivers.methods import CUSTOM_METHOD, METHODS, MethodInfo, check_supports, method_name, second_order_for
from ..drivers.scipy_local import run_minimize, wrap_callback
from ..params import ParamSpec
from ..problem import Objective
from ..recording import recorders

__all__ = ["MethodPlan", "plan_method", "solve"]

_JAC_SCHEMES = (False, "2-point", "3-point")


@dataclass(frozen=True)
class MethodPlan:
    """What one solve asks of the objective: method, gradient source, second-order kind."""

    name: str
    method: str | Callable
    info: MethodInfo
    second_order: Any
    gradient_scheme: str | None

    @property
    def derivative_free(self) -> bool:
        """True when the objective's gradient is never computed by the framework."""
        return self.info.gradient in (None, "scipy") and self.second_order is None


def plan_method(
    method: str | Callable | None,
    *,
    has_bounds: bool,
    has_constraints: bool,
    jac: bool | str | None = None,
    hessp: bool = False,
) -> MethodPlan:
    """Validate ``method`` against the problem and decide which derivatives it gets.

    ``jac`` is None or True (the framework's gradient), or False, '2-point' or '3-point'
    (scipy's finite differences). ``hessp=True`` gives trust-constr Hessian-vector products
    instead of full Hessians.
    """
    if callable(method):
        name, info = getattr(method, "__name__", "custom"), CUSTOM_METHOD
    else:
        name = method_name(method, has_bounds, has_constraints)
        info = METHODS[name]
        check_supports(name, info, has_bounds, has_constraints)
    if not isinstance(hessp, bool):
        raise TypeError(f"hessp must be True or False; got {hessp!r}.")
    second_order = second_order_for(name, info, None, True if hessp else None)
    gradient_scheme = None
    if jac is not None and jac is not True:
        if jac not in _JAC_SCHEMES:
            raise ValueError(
                f"jac={jac!r} is not accepted; use None or True (exact gradients by autodiff), "
                "or False, '2-point' or '3-point' (scipy's finite differences)."
            )
        if info.gradient is not None:
            gradient_scheme = "2-point" if jac is False else jac
            info = replace(info, gradient="scipy")
    return MethodPlan(name, method if callable(method) else name, info, second_order, gradient_scheme)


def solve(
    plan: MethodPlan,
    functions: Any,
    spec: ParamSpec,
    x0: np.ndarray,
    *,
    bounds: tuple[np.ndarray, np.ndarray] | None,
    constraints: Any,
    compile_vector: Callable[[Callable, tuple], Any],
    make_call: Callable[[Callable, tuple], Callable] | None,
    tol: float | None,
    options: dict | None,
    callback: Callable | None,
    precision: str,
    backend: str,
    history: bool = True,
    log: Any = None,
    progress: bool = False,
) -> so.OptimizeResult:
    """Minimize the flat objective ``functions`` (a ``ScalarFunctions``) from ``x0``.

    ``compile_vector(fun, args)`` turns a constraint function into flat vector functions;
    ``make_call(jac, args)`` a user-supplied constraint Jacobian into a function of the flat
    vector (None when the integration's constraints cannot carry one).
    The result keeps scipy's flat ``x`` and ``jac`` (float64, the parameters in order), with
    honest ``nfev``/``njev``/``nhev``/``nhvp`` counts, ``backend`` and ``precision``.
    ``callback`` receives x as ``spec.restore`` gives it (or an ``intermediate_result``).
    ``history``, ``log`` and ``progress`` are ``am.minimize``'s: ``result.history`` records
    every evaluation and iteration, ``log`` an SQLite log (a path or ``am.SQLiteLog``), ``progress`` a tqdm bar.
    """
    if bounds is not None:
        x0, moved = clip_to_bounds(x0, bounds, spec)
        if moved:
            warnings.warn(
                f"the starting point is outside the bounds at {', '.join(moved)}; it was clipped "
                "into them.",
                UserWarning,
                stacklevel=3,
            )
    observers, sinks = recorders(history, log, progress, None, plan.name, options)
    sinks.start(
        spec, x0, method=plan.name, backend=backend, precision=precision, tol=tol, options=options,
        has_bounds=bounds is not None, has_constraints=bool(constraints),
    )
    objective = Objective(
        functions,
        spec,
        differentiable=plan.info.gradient not in (None, "scipy"),
        second_order=plan.second_order,
        journal=sinks.journal,
        observers=observers,
    )
    try:
        scipy_constraints, constraint_functions = normalize_constraints(
            constraints, plan.name, spec, compile_vector, make_call
        )
        result = run_minimize(
            objective,
            x0,
            plan.method,
            plan.info,
            second_order=plan.second_order,
            gradient_scheme=plan.gradient_scheme,
            bounds=bounds,
            constraints=scipy_constraints,
            tol=tol,
            callback=wrap_callback(callback, spec, plan.info, plan.name, objective),
            options=options,
        )
    except BaseException as exc:
        sinks.close(status=-1, success=False, message=f"{type(exc).__name__}: {exc}", objective=objective)
        raise
    sinks.close(status=result.get("status"), success=result.get("success", False), message=result.get("message", ""), objective=objective)
    if sinks.history is not None:
        result.history = sinks.history
    if sinks.log is not None:
        result.log_error = sinks.log_error
    x = np.array(result.x, dtype=np.float64).reshape(-1)
    result.x = x
    jac = result.get("jac")
    if plan.name != "trust-constr" and isinstance(jac, np.ndarray) and jac.size == spec.size:
        result.jac = np.asarray(jac, dtype=np.float64).reshape(-1)
    elif "jac" not in result and objective.known_gradient(x) is not None:
        result.jac = objective.known_gradient(x).copy()
    result.fun = float(result.fun) if result.get("fun") is not None else objective.best_f
    result.update(objective.counters.as_dict())
    result.backend = backend
    result.precision = precision
    if constraint_functions:
        result.constraint_evaluations = [
            {"name": cf.name, "nfev": cf.nfev, "njev": cf.njev, "nhev": cf.nhev}
            for cf in constraint_functions
        ]
    return result
